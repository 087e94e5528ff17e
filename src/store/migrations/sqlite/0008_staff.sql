-- Staff roles. Every member of staff is a row of `admins`: a school admin (full user
-- management), a tutor (their own teaching groups and students) or read-only staff; `none`
-- keeps the row (tokens refer to it) but grants nothing. Admins created before roles stay
-- school admins.
ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
-- The account a member of staff signs in with (a tutor's own account, whose teaching groups
-- are theirs); NULL for an admin with a console password of their own.
ALTER TABLE admins ADD COLUMN user_id TEXT;
CREATE UNIQUE INDEX admins_account ON admins (school_id, user_id) WHERE user_id IS NOT NULL;
