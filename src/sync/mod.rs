//! Directory sync: reading a school's directory. Today the LDAP reader (OpenLDAP and Active
//! Directory); mapping rules, reconcile plans and scheduled runs build on it.

pub mod dn;
pub mod ldap;
