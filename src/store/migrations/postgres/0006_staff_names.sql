-- A member of staff who signs in with their account goes by that account's username: when it
-- changes (a SCIM client or a directory renames the person), their staff row follows in the
-- same transaction. A name another member of staff has already fails the rename as taken.
CREATE FUNCTION admins_follow_user_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE admins SET user_name = NEW.user_name, user_name_key = NEW.user_name_key
     WHERE user_id = NEW.id AND school_id = NEW.school_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER admins_follow_user_name AFTER UPDATE OF user_name, user_name_key ON users
    FOR EACH ROW
    WHEN (NEW.user_name IS DISTINCT FROM OLD.user_name
          OR NEW.user_name_key IS DISTINCT FROM OLD.user_name_key)
    EXECUTE FUNCTION admins_follow_user_name();
-- Rows of accounts renamed before this trigger.
UPDATE admins a SET user_name = u.user_name, user_name_key = u.user_name_key
  FROM users u
 WHERE u.id = a.user_id AND u.school_id = a.school_id AND u.user_name_key <> a.user_name_key;
