-- A member of staff who signs in with their account goes by that account's username: when it
-- changes (a SCIM client or a directory renames the person), their staff row follows in the
-- same transaction. A name another member of staff has already fails the rename as taken.
CREATE TRIGGER admins_follow_user_name AFTER UPDATE OF user_name, user_name_key ON users
    WHEN NEW.user_name IS NOT OLD.user_name OR NEW.user_name_key IS NOT OLD.user_name_key
BEGIN
    UPDATE admins SET user_name = NEW.user_name, user_name_key = NEW.user_name_key
     WHERE user_id = NEW.id AND school_id = NEW.school_id;
END;
-- Rows of accounts renamed before this trigger.
UPDATE admins SET
    user_name = (SELECT u.user_name FROM users u
                  WHERE u.id = admins.user_id AND u.school_id = admins.school_id),
    user_name_key = (SELECT u.user_name_key FROM users u
                      WHERE u.id = admins.user_id AND u.school_id = admins.school_id)
 WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = admins.user_id
                 AND u.school_id = admins.school_id AND u.user_name_key <> admins.user_name_key);
