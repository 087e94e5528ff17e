//! Integration tests: the daemon runs in-process on 127.0.0.1 (port 0) on a fresh SQLite
//! store (or, with `ROLLCALL_TEST_STORE=postgres`, a fresh PostgreSQL database), and the tests
//! talk to it over HTTP like any SCIM client.

mod audit;
mod bad_input;
mod browser;
mod browser_console;
mod browser_reset;
mod bulk;
mod cli;
mod clients;
mod conformance;
mod console;
mod courses;
mod credentials;
mod discovery;
mod entitlements;
mod filters;
mod google;
mod google_api;
mod harness;
mod import;
mod instances;
mod isolation;
mod ldap;
mod listing;
mod oneroster;
mod permissions;
mod postgres;
mod reset;
mod slapd;
mod smoke;
mod smtp;
mod sync;
mod usernames;
mod versions;
mod webhooks;
