//! A real OpenLDAP server for the directory-sync tests, and a generated school directory to
//! load into it.
//!
//! [`Slapd::start`] writes a `slapd.conf` into a temporary directory, loads the LDIF it is given
//! (after the base entry, `ou=Service` and the reader account, which it adds itself) with
//! `slapadd`, and runs `/usr/sbin/slapd` in the foreground on a free loopback port. Dropping the
//! [`Slapd`] kills and reaps the process and removes the directory.
//!
//! The server behaves like a school's directory does towards a sync client:
//! - the reader (`cn=reader,ou=Service,…`) reads everything but passwords; anonymous clients
//!   see nothing (they may only bind);
//! - a search returns at most 1,000 entries (`sizelimit`), except for the rootdn (slapd never
//!   limits it); the simple paged results control (RFC 2696) gets every entry, page by page
//!   (`size.prtotal=unlimited`: by default slapd would stop paged searches at 1,000 too);
//! - `syncprov` is loaded, so RFC 4533 content synchronisation (`-E sync=ro`) works.
//!
//! [`Slapd::start_tls`] starts one that speaks TLS too: StartTLS on [`Slapd::url`] and LDAPS on
//! [`Tls::ldaps_url`], with a certificate for 127.0.0.1 and `localhost` from a CA generated for
//! the test with `rcgen` (and a second, unrelated CA for clients that must refuse it).
//!
//! [`school_ldif`] generates a deterministic school: students, tutors and teaching groups,
//! with the awkward cases a real directory has (see its documentation).
//!
//! Every server also loads a small Active Directory schema ([`AD_SCHEMA`]: `objectGUID`,
//! `sAMAccountName`, `userPrincipalName`, `userAccountControl`, `memberOf`, `uSNChanged`…, the
//! classes `user` and `group`, with Microsoft's OIDs), so it can hold [`ad_school_ldif`]'s
//! Active Directory-shaped school. The change helpers ([`Slapd::move_entry`],
//! [`Slapd::add_member`], [`Slapd::set_disabled`]…) keep `member`/`memberOf` consistent and
//! advance `uSNChanged` the way Active Directory does.
//!
//! slapd keeps the DN values that slapadd loads (`member: CN=…,OU=…`) as written, but prettifies
//! those sent by LDAP operations (`ldapmodify`: `cn=…,ou=…`), and always returns entry DNs in
//! its own spelling (`cn=Cohen\2C David,ou=Staff,dc=school,dc=example`).
//!
//! `scripts/test.sh` installs slapd and ldap-utils. Without them a plain `cargo test` prints a
//! loud `skipped:` line and [`Slapd::start`] returns `None`; with `CI=true` it panics instead.
//!
//! Debian's slapd 2.5 builds only the `config`, `ldif` and `monitor` backends in: `mdb` and the
//! overlays are modules in `/usr/lib/ldap` (`modulepath` + `moduleload back_mdb`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SLAPPASSWD: &str = "/usr/sbin/slappasswd";

/// The suffix of the directory.
pub const BASE: &str = "dc=school,dc=example";
/// Where the generated people and groups live.
pub const STUDENTS: &str = "ou=Students,dc=school,dc=example";
pub const TUTORS: &str = "ou=Tutors,dc=school,dc=example";
pub const GROUPS: &str = "ou=Groups,dc=school,dc=example";

const READER_DN: &str = "cn=reader,ou=Service,dc=school,dc=example";
const READER_PASSWORD: &str = "reader-secret";
const ADMIN_DN: &str = "cn=admin,dc=school,dc=example";
const ADMIN_PASSWORD: &str = "admin-secret";

/// The largest number of entries one unpaged search returns to anyone but the rootdn.
pub const SIZE_LIMIT: usize = 1000;

/// A running slapd. Dropping it kills and reaps the process, then removes its directory.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    /// `dc=school,dc=example`
    pub base: String,
    /// The service account a sync client binds as: reads everything but `userPassword`.
    pub reader_dn: String,
    pub reader_password: String,
    /// The rootdn: unlimited, may write.
    pub admin_dn: String,
    pub admin_password: String,
    child: Child,
    /// The highest `uSNChanged` written so far (see [`Slapd::highest_usn`]).
    usn: AtomicU64,
    // Removed once `drop` has stopped the process.
    dir: tempfile::TempDir,
}

impl Slapd {
    /// Starts a slapd holding the base entry, `ou=Service`, the reader and then `ldif` (entries
    /// under `dc=school,dc=example`, e.g. [`school_ldif`]'s; may be empty). `None` (after a loud
    /// `skipped:` line) when slapd is not installed; with `CI=true` that panics instead.
    ///
    /// Blocking (well under a second for a few thousand entries); fine in an async test.
    pub fn start(ldif: &str) -> Option<Slapd> {
        Slapd::start_on(ldif, None)
    }

    /// [`Slapd::start`], trying `port` first (a free one when `None`).
    fn start_on(ldif: &str, port: Option<u16>) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() {
            skip("slapd is not installed (scripts/test.sh installs it)");
            return None;
        }
        if !installed("ldapsearch") || !installed("ldapmodify") {
            skip("ldap-utils (ldapsearch) is not installed (scripts/test.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("slapd.conf");
        std::fs::write(&conf, config(dir.path())).unwrap();
        std::fs::write(dir.path().join("ad.schema"), AD_SCHEMA).unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();

        let file = dir.path().join("directory.ldif");
        std::fs::write(&file, format!("{}{ldif}", base_ldif())).unwrap();
        let output = Command::new(SLAPADD)
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "slapadd failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );

        // The port is free when we look; another process may take it before slapd binds it.
        // slapd then exits at once, and we try another.
        let log = dir.path().join("slapd.log");
        let (port, child) = spawn(&conf, &log, port);
        let mut slapd = Slapd {
            url: format!("ldap://127.0.0.1:{port}"),
            base: BASE.to_owned(),
            reader_dn: READER_DN.to_owned(),
            reader_password: READER_PASSWORD.to_owned(),
            admin_dn: ADMIN_DN.to_owned(),
            admin_password: ADMIN_PASSWORD.to_owned(),
            child,
            usn: AtomicU64::new(highest_usn_in(ldif)),
            dir,
        };
        let mut attempts = 1;
        loop {
            match slapd.wait_listening() {
                Ok(()) => return Some(slapd),
                Err(output) if output.contains("Address already in use") && attempts < 5 => {
                    attempts += 1;
                    let (port, child) = spawn(&conf, &log, None);
                    slapd.url = format!("ldap://127.0.0.1:{port}");
                    slapd.child = child;
                }
                Err(output) => panic!("slapd exited before it listened:\n{output}"),
            }
        }
    }

    /// The pid of the slapd process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything slapd has logged so far (`-d stats`: connections, binds, searches, results).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Runs `ldapsearch -LLL` bound as `dn`/`password` (anonymous when `dn` is empty) with
    /// `args` after the connection options (e.g. `["-b", base, "-E", "pr=500/noprompt",
    /// filter, attribute…]`); long lines are not wrapped.
    pub fn ldapsearch(&self, dn: &str, password: &str, args: &[&str]) -> Search {
        let mut command = Command::new("ldapsearch");
        command.args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url]);
        if !dn.is_empty() {
            command.args(["-D", dn, "-w", password]);
        }
        let output = command.args(args).output().unwrap();
        Search::new(output)
    }

    /// [`Slapd::ldapsearch`] as the reader, under the base.
    pub fn search_as_reader(&self, args: &[&str]) -> Search {
        let base = ["-b", self.base.as_str()];
        let args: Vec<&str> = base.iter().chain(args).copied().collect();
        self.ldapsearch(&self.reader_dn, &self.reader_password, &args)
    }

    /// Applies `ldif` (changetype records: add, modify, modrdn, delete) as the rootdn with
    /// `ldapmodify`; panics when slapd refuses any of it.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url, "-D", &self.admin_dn, "-w"])
            .arg(&self.admin_password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "ldapmodify failed ({}): {}{}\n{ldif}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The entry `dn` as the rootdn sees it (a base search) with `attributes` (`[]`: the user
    /// attributes, as `*`); `None` when it does not exist.
    pub fn read(&self, dn: &str, attributes: &[&str]) -> Option<Entry> {
        let mut args = vec!["-s", "base", "-b", dn, "(objectClass=*)"];
        args.extend(attributes);
        let search = self.ldapsearch(&self.admin_dn, &self.admin_password, &args);
        match search.code {
            0 => search.entries.into_iter().next(),
            32 => None,
            code => panic!("cannot read {dn} ({code}): {}", search.stderr),
        }
    }

    /// Active Directory's `highestCommittedUSN`, as this fixture keeps it: the highest
    /// `uSNChanged` in the LDIF the server started with, or written by the helpers since.
    /// A delta sync asks for `(uSNChanged>=N)` with N one above the value it saw last.
    pub fn highest_usn(&self) -> u64 {
        self.usn.load(Ordering::SeqCst)
    }

    /// Deletes the leaf entry `dn` and, as Active Directory does with its linked attributes
    /// (and OpenLDAP's refint overlay), every `member` and `memberOf` value naming it, in any
    /// case. The groups' `uSNChanged` is left alone. Panics when slapd refuses, e.g. for the
    /// last `member` of a `groupOfNames` (its class requires one).
    pub fn delete(&self, dn: &str) {
        self.relink(dn, None);
        self.modify(&format!("{}changetype: delete\n", value("dn", dn)));
    }

    /// Renames or moves `dn` (LDAP modrdn, the old RDN value removed): its RDN becomes
    /// `new_rdn` (e.g. `CN=Jane Smith-Brown`; RFC 4514 escaped, see [`rdn_value`]) and, with
    /// `new_parent`, its parent too (e.g. `OU=Year 13,OU=Students,DC=school,DC=example`).
    /// Like Active Directory, the `member` and `memberOf` values naming it are rewritten to the
    /// new DN (without touching those entries' `uSNChanged`; in AD links follow the object),
    /// and its own `uSNChanged`, if it has one, advances. Returns the new DN as built from the
    /// arguments; slapd spells the attribute types of DNs it is sent (the entry's and the
    /// rewritten values) its own way: `cn=…,ou=…`.
    pub fn move_entry(&self, dn: &str, new_rdn: &str, new_parent: Option<&str>) -> String {
        let (_, parent) = split_rdn(dn);
        let mut ldif = format!(
            "{}changetype: modrdn\n{}deleteoldrdn: 1\n",
            value("dn", dn),
            value("newrdn", new_rdn)
        );
        if let Some(new_parent) = new_parent {
            ldif.push_str(&value("newsuperior", new_parent));
        }
        self.modify(&ldif);
        let new_dn = format!("{new_rdn},{}", new_parent.unwrap_or(parent));
        self.relink(dn, Some(&new_dn));
        self.touch(&new_dn);
        new_dn
    }

    /// A person's new name: `givenName`, `sn`, `displayName` (when the entry has one) and
    /// `cn` (`"{given} {sn}"`) are replaced. When `cn` is the RDN (as in Active Directory) the
    /// entry is renamed with [`Slapd::move_entry`] in the same parent, so group memberships
    /// follow; otherwise (`uid=…`) the DN stays. `uSNChanged` advances. Returns the DN after.
    pub fn rename_person(&self, dn: &str, given_name: &str, sn: &str) -> String {
        let entry = self.read(dn, &["displayName"]).expect("the person exists");
        let cn = format!("{given_name} {sn}");
        let mut ldif = format!("{}changetype: modify\n", value("dn", dn));
        let mut replace = |attribute: &str, new: &str| {
            ldif.push_str(&format!(
                "replace: {attribute}\n{}-\n",
                value(attribute, new)
            ));
        };
        replace("givenName", given_name);
        replace("sn", sn);
        if !entry.get("displayName").is_empty() {
            replace("displayName", &cn);
        }
        let (rdn, _) = split_rdn(dn);
        let (rdn_type, _) = rdn.split_once('=').expect("an RDN has a type");
        let cn_is_rdn = ["cn", "commonName", "2.5.4.3"]
            .iter()
            .any(|name| rdn_type.trim().eq_ignore_ascii_case(name));
        if cn_is_rdn {
            self.modify(&ldif);
            self.move_entry(dn, &format!("{rdn_type}={}", rdn_value(&cn)), None)
        } else {
            replace("cn", &cn);
            self.modify(&ldif);
            self.touch(dn);
            dn.to_owned()
        }
    }

    /// Sets or clears `ACCOUNTDISABLE` (2) in the `userAccountControl` of `dn`, keeping the
    /// other flags (512 ↔ 514, 66048 ↔ 66050), and advances its `uSNChanged`.
    pub fn set_disabled(&self, dn: &str, disabled: bool) {
        let entry = self
            .read(dn, &["userAccountControl"])
            .expect("the account exists");
        let flags: u32 = entry
            .get("userAccountControl")
            .first()
            .map_or(UAC_NORMAL_ACCOUNT, |v| v.parse().unwrap());
        let flags = if disabled {
            flags | UAC_ACCOUNTDISABLE
        } else {
            flags & !UAC_ACCOUNTDISABLE
        };
        self.modify(&format!(
            "{}changetype: modify\nreplace: userAccountControl\nuserAccountControl: {flags}\n-\n",
            value("dn", dn)
        ));
        self.touch(dn);
    }

    /// Adds `member` (a DN, written as given) to `group`'s `member`, advancing the group's
    /// `uSNChanged`; when `member` is an Active Directory `user` or `group`, `group` joins its
    /// `memberOf` too (AD's back-link; its `uSNChanged` stays, as in AD).
    pub fn add_member(&self, group: &str, member: &str) {
        self.change_member("add", group, member);
    }

    /// Removes `member` (in any case) from `group`, the counterpart of [`Slapd::add_member`].
    pub fn remove_member(&self, group: &str, member: &str) {
        self.change_member("delete", group, member);
    }

    fn change_member(&self, operation: &str, group: &str, member: &str) {
        self.modify(&format!(
            "{}changetype: modify\n{operation}: member\n{}-\n",
            value("dn", group),
            value("member", member)
        ));
        self.touch(group);
        let is_ad = self.read(member, &["objectClass"]).is_some_and(|entry| {
            entry.get("objectClass").iter().any(|class| {
                class.eq_ignore_ascii_case("user") || class.eq_ignore_ascii_case("group")
            })
        });
        if is_ad {
            self.modify(&format!(
                "{}changetype: modify\n{operation}: memberOf\n{}-\n",
                value("dn", member),
                value("memberOf", group)
            ));
        }
    }

    /// Rewrites (`new`) or removes (`None`) every `member` and `memberOf` value naming `old`.
    fn relink(&self, old: &str, new: Option<&str>) {
        for attribute in ["member", "memberOf"] {
            let filter = format!("({attribute}={})", filter_value(old));
            let search = self.ldapsearch(
                &self.admin_dn,
                &self.admin_password,
                &["-b", &self.base, &filter, "1.1"],
            );
            assert_eq!(search.code, 0, "{filter}: {}", search.stderr);
            for entry in search.entries {
                let mut ldif = format!(
                    "{}changetype: modify\ndelete: {attribute}\n{}-\n",
                    value("dn", &entry.dn),
                    value(attribute, old)
                );
                if let Some(new) = new {
                    ldif.push_str(&format!("add: {attribute}\n{}-\n", value(attribute, new)));
                }
                self.modify(&ldif);
            }
        }
    }

    /// Gives `dn` the next `uSNChanged` when it has one (Active Directory's objects do).
    fn touch(&self, dn: &str) {
        let entry = self.read(dn, &["uSNChanged"]).expect("the entry exists");
        if entry.get("uSNChanged").is_empty() {
            return;
        }
        let usn = self.usn.fetch_add(1, Ordering::SeqCst) + 1;
        self.modify(&format!(
            "{}changetype: modify\nreplace: uSNChanged\nuSNChanged: {usn}\n-\n",
            value("dn", dn)
        ));
    }

    /// Waits (up to 10 s) until slapd has opened its listener (it logs `slapd starting`) and
    /// the port accepts connections. `Err(log)` when slapd exits first.
    fn wait_listening(&mut self) -> Result<(), String> {
        let address: SocketAddr = self.url.strip_prefix("ldap://").unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The log first: whoever else may hold the port accepts connections too.
            if self.log().contains("slapd starting")
                && TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("{status}\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen on {address} within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts slapd on `port` or one that is free now, logging to `log` (truncated).
fn spawn(conf: &Path, log: &Path, port: Option<u16>) -> (u16, Child) {
    let port = port.unwrap_or_else(|| {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    // `-d stats` keeps slapd in the foreground and logs connections and operations; with `-d 0`
    // it would not even say why it could not bind.
    let child = Command::new(SLAPD)
        .arg("-f")
        .arg(conf)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .args(["-d", "stats"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap();
    (port, child)
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn skip(message: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The server configuration: schemas, limits, access rules, one mdb database in `dir`.
fn config(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"# Written by tests/it/slapd.rs.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
# Active Directory's user and group, for ad_school_ldif.
include "{dir}/ad.schema"

pidfile "{dir}/slapd.pid"
argsfile "{dir}/slapd.args"

# Debian builds mdb and the overlays as modules.
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov

# At most {SIZE_LIMIT} entries per search (the rootdn is never limited); a paged search
# gets every entry (slapd's default would stop it at the hard limit too).
sizelimit size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited

database mdb
maxsize 268435456
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory "{dir}/db"
index objectClass,uid,employeeNumber,entryUUID,entryCSN eq
index objectGUID,sAMAccountName,member,memberOf eq

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{READER_DN}" read
    by * none

overlay syncprov
"#
    )
}

/// The base entry, `ou=Service` and the reader (its password hashed `{{SSHA}}` by slappasswd).
fn base_ldif() -> String {
    let output = Command::new(SLAPPASSWD)
        .args(["-s", READER_PASSWORD])
        .output()
        .unwrap();
    assert!(output.status.success(), "slappasswd failed: {output:?}");
    let hash = String::from_utf8(output.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("{SSHA}"), "{hash}");
    format!(
        "dn: {BASE}\n\
         objectClass: dcObject\n\
         objectClass: organization\n\
         dc: school\n\
         o: Example School\n\
         \n\
         dn: ou=Service,{BASE}\n\
         objectClass: organizationalUnit\n\
         ou: Service\n\
         \n\
         dn: {READER_DN}\n\
         objectClass: organizationalRole\n\
         objectClass: simpleSecurityObject\n\
         cn: reader\n\
         description: The account the sync reads the directory with\n\
         userPassword: {hash}\n\
         \n"
    )
}

// --- TLS ---------------------------------------------------------------------------------------

/// What a client needs to reach a server started with [`Slapd::start_tls`]. The files live in
/// the server's directory: they go when the [`Slapd`] is dropped.
pub struct Tls {
    /// `ldaps://127.0.0.1:PORT`. The same server answers StartTLS on [`Slapd::url`].
    pub ldaps_url: String,
    /// The PEM certificate of the throwaway CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// The PEM certificate of another throwaway CA, which signed nothing this server has.
    pub other_ca_file: PathBuf,
}

impl Slapd {
    /// [`Slapd::start`], then restarted with TLS: a CA and a server certificate (for IP
    /// 127.0.0.1 and DNS `localhost`, signed by that CA) generated now, and listeners on
    /// [`Slapd::url`] (plain LDAP and StartTLS) and [`Tls::ldaps_url`]. `None` as for
    /// [`Slapd::start`].
    ///
    /// The first start loads the directory exactly as everybody else's; restarting with the
    /// TLS settings added costs a few tens of milliseconds.
    pub fn start_tls(ldif: &str) -> Option<(Slapd, Tls)> {
        let mut slapd = Slapd::start(ldif)?;
        let _ = slapd.child.kill();
        let _ = slapd.child.wait();

        let dir = slapd.dir.path().to_owned();
        let files = write_certificates(&dir);
        let conf = dir.join("slapd.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        // Global directives: before the first `database`, like everything else in the file.
        std::fs::write(
            &conf,
            format!(
                "# TLS (GnuTLS in Debian's slapd): the server's certificate and key, PEM.\n\
                 TLSCACertificateFile \"{}\"\n\
                 TLSCertificateFile \"{}\"\n\
                 TLSCertificateKeyFile \"{}\"\n\n{text}",
                files.ca.display(),
                files.certificate.display(),
                files.key.display(),
            ),
        )
        .unwrap();

        let log = dir.join("slapd.log");
        let mut attempts = 1;
        loop {
            let (port, tls_port, child) = spawn_tls(&conf, &log);
            slapd.url = format!("ldap://127.0.0.1:{port}");
            slapd.child = child;
            match slapd.wait_listening() {
                Ok(()) => {
                    let tls = Tls {
                        ldaps_url: format!("ldaps://127.0.0.1:{tls_port}"),
                        ca_file: files.ca,
                        other_ca_file: files.other_ca,
                    };
                    return Some((slapd, tls));
                }
                Err(output) if output.contains("Address already in use") && attempts < 5 => {
                    attempts += 1;
                }
                Err(output) => panic!("slapd with TLS exited before it listened:\n{output}"),
            }
        }
    }
}

/// The PEM files [`write_certificates`] writes.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

/// Generates a CA, a server certificate it signs (127.0.0.1 and `localhost`, ECDSA P-256, valid
/// from yesterday for a week) with its key (PKCS#8), and an unrelated CA; writes them to `dir`.
pub fn write_certificates(dir: &Path) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };

    let now = time::OffsetDateTime::now_utc();
    let (not_before, not_after) = (now - time::Duration::days(1), now + time::Duration::days(7));
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = (not_before, not_after);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let authority = ca("rollcall test CA");
    let other = ca("rollcall unrelated test CA");

    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = (not_before, not_after);
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &authority).unwrap();

    let files = TlsFiles {
        ca: dir.join("tls-ca.pem"),
        certificate: dir.join("tls-server.pem"),
        key: dir.join("tls-server.key"),
        other_ca: dir.join("tls-other-ca.pem"),
    };
    std::fs::write(&files.ca, authority.pem()).unwrap();
    std::fs::write(&files.certificate, certificate.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.other_ca, other.pem()).unwrap();
    files
}

/// [`spawn`] with TLS: plain LDAP (and StartTLS) and LDAPS, each on a port that is free now.
fn spawn_tls(conf: &Path, log: &Path) -> (u16, u16, Child) {
    // Both held at once, so they differ.
    let listeners = [0, 1].map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap());
    let [port, tls_port] = listeners.map(|l| l.local_addr().unwrap().port());
    let child = Command::new(SLAPD)
        .arg("-f")
        .arg(conf)
        .arg("-h")
        .arg(format!(
            "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
        ))
        .args(["-d", "stats"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap();
    (port, tls_port, child)
}

// --- The generated school ----------------------------------------------------------------------

/// A generated school directory: its LDIF (for [`Slapd::start`]) and what is in it.
pub struct Generated {
    pub ldif: String,
    /// In the order written; the special cases ([`SPECIAL_STUDENTS`]) first.
    pub students: Vec<Person>,
    pub tutors: Vec<Person>,
    pub groups: Vec<Group>,
}

/// A student or tutor: an `inetOrgPerson`.
#[derive(Clone, Debug)]
pub struct Person {
    pub dn: String,
    pub uid: String,
    pub given_name: String,
    pub sn: String,
    /// `cn` is `"{given_name} {sn}"`.
    pub cn: String,
    /// The stable anchor: `S000001`… for students, `T00001`… for tutors.
    pub employee_number: String,
    /// The year group (`departmentNumber`, "7" to "13"); `None` for tutors.
    pub year: Option<String>,
    /// `None` for the one student without `mail`.
    pub mail: Option<String>,
}

/// A teaching group. `members` are the `member` values exactly as written in the LDIF.
#[derive(Clone, Debug)]
pub struct Group {
    pub dn: String,
    pub cn: String,
    pub members: Vec<String>,
}

/// The students every generated directory starts with: `(uid, givenName, sn, year, has mail)`.
/// Their employee numbers are S000001 to S000008 in this order.
pub const SPECIAL_STUDENTS: [(&str, &str, &str, &str, bool); 8] = [
    // Twins: same surname, same first initial, same year and groups.
    ("jsmith", "James", "Smith", "12", true),
    ("jsmith2", "Jane", "Smith", "12", true),
    // Non-ASCII: written base64 (`cn:: …`) in LDIF.
    ("zosuilleabhain", "Zoë", "Ó Súilleabháin", "10", true),
    ("lzolc", "Łukasz", "Żółć", "9", true),
    // Apostrophes.
    ("doneill", "D'Arcy", "O'Neill", "11", true),
    // Hyphens.
    ("msmithjones", "Mary-Jane", "Smith-Jones", "8", true),
    // Spaces in the surname.
    ("pvanderberg", "Pieter", "van der Berg", "7", true),
    // No `mail` attribute.
    ("nwilliams", "Noah", "Williams", "13", false),
];

/// The tutors: `(uid, givenName, sn)`, employee numbers T00001 to T00006.
const TUTOR_NAMES: [(&str, &str, &str); 6] = [
    ("mhughes", "Margaret", "Hughes"),
    ("rpatel", "Rajesh", "Patel"),
    ("sevans", "Siân", "Evans"),
    ("tobrien", "Thomas", "O'Brien"),
    ("afernandez", "Ana-Lucía", "Fernández"),
    ("dcohen", "David", "Cohen"),
];

const GIVEN_NAMES: [&str; 24] = [
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noel", "Mia", "Leo", "Ivy", "Oscar",
    "Freya", "Arthur", "Lily", "Henry", "Grace", "Theo", "Rosie", "Alfie", "Ella", "Finley",
    "Evie", "Archie", "Poppy",
];

const SURNAMES: [&str; 25] = [
    "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Johnson", "Roberts", "Walker",
    "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood",
    "Harris", "Lewis", "Martin", "Jackson", "Clarke", "Clark", "Turner",
];

/// The year groups, "7" to "13".
const YEARS: std::ops::RangeInclusive<u32> = 7..=13;

/// A school directory with `students` students (at least the 8 [`SPECIAL_STUDENTS`]), the 6
/// tutors and these groups, all deterministic:
///
/// - `ou=Students`: `uid=<uid>,ou=Students,dc=school,dc=example`, `inetOrgPerson` with `uid`,
///   `cn`, `givenName`, `sn`, `mail` (`<uid>@students.school.example`), `employeeNumber`
///   (`S000001`…, the stable anchor) and `departmentNumber` (the year group, "7" to "13").
///   The special cases come first; the others are named from fixed lists (the same name
///   recurs, as in a real school), `uid` is initial + surname + number (`aevans9`) and the
///   year group is the index modulo 7.
/// - `ou=Tutors`: 6 tutors, `employeeNumber` `T00001`…, `mail` `<uid>@school.example`,
///   `title: Teacher`; one has a non-ASCII given name (Siân), one an apostrophe (O'Brien).
/// - `ou=Groups`, `cn=<name>,ou=Groups,…` (a `/` in an RDN value needs no escaping):
///   - `7A/Ma1` … `13A/Ma1`: `groupOfNames`, every student of that year, then a tutor
///     (`13A/Ma1` has the same tutor as `7A/Ma1`);
///   - `12B/En1`: the twins and the next 3 year-12 students (so they are in two groups), then
///     a tutor;
///   - `10B/Fr1`: the first 3 year-10 students (Zoë first) and a tutor, their `member` DNs
///     written in another case (`UID=ZOSUILLEABHAIN,OU=Students,DC=School,DC=Example`); slapd
///     keeps them as written;
///   - `13C/Ps1`: empty. OpenLDAP refuses a `groupOfNames` without `member` (the core schema
///     requires it), so it is a `posixGroup` (RFC 2307, `gidNumber` 20000) without
///     `memberUid`, as on Linux-based school servers;
///   - `13D/Ps2`: emptied the way OpenLDAP directories do it for `groupOfNames` (refint's
///     `refint_nothing`): its only `member` is the empty DN (`member:` in LDIF). No people.
pub fn school_ldif(students: usize) -> Generated {
    assert!(
        students >= SPECIAL_STUDENTS.len(),
        "the directory has at least the {} special students",
        SPECIAL_STUDENTS.len()
    );
    let mut ldif = String::new();
    for ou in ["Students", "Tutors", "Groups"] {
        ldif.push_str(&format!(
            "dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        ));
    }

    let mut people = Vec::with_capacity(students);
    for (i, (uid, given, sn, year, mail)) in SPECIAL_STUDENTS.into_iter().enumerate() {
        people.push(student(i + 1, uid, given, sn, year, mail));
    }
    for i in SPECIAL_STUDENTS.len()..students {
        let number = i + 1;
        let given = GIVEN_NAMES[i % GIVEN_NAMES.len()];
        let sn = SURNAMES[(i / GIVEN_NAMES.len()) % SURNAMES.len()];
        let uid = format!("{}{}{number}", given[..1].to_lowercase(), sn.to_lowercase());
        let year = (7 + i % 7).to_string();
        people.push(student(number, &uid, given, sn, &year, true));
    }
    let tutors: Vec<Person> = TUTOR_NAMES
        .iter()
        .enumerate()
        .map(|(i, &(uid, given, sn))| Person {
            dn: format!("uid={uid},{TUTORS}"),
            uid: uid.to_owned(),
            given_name: given.to_owned(),
            sn: sn.to_owned(),
            cn: format!("{given} {sn}"),
            employee_number: format!("T{:05}", i + 1),
            year: None,
            mail: Some(format!("{uid}@school.example")),
        })
        .collect();
    for person in people.iter() {
        ldif.push_str(&person_ldif(person, None));
    }
    for person in tutors.iter() {
        ldif.push_str(&person_ldif(person, Some("Teacher")));
    }

    let in_year = |year: &str| -> Vec<String> {
        people
            .iter()
            .filter(|p| p.year.as_deref() == Some(year))
            .map(|p| p.dn.clone())
            .collect()
    };
    let mut groups = Vec::new();
    for (i, year) in YEARS.enumerate() {
        let year = year.to_string();
        let mut members = in_year(&year);
        members.push(tutors[i % tutors.len()].dn.clone());
        groups.push(group(&format!("{year}A/Ma1"), members));
    }
    let mut members: Vec<String> = in_year("12").into_iter().take(5).collect();
    members.push(tutors[4].dn.clone());
    groups.push(group("12B/En1", members));
    let upper = |p: &Person, ou: &str| {
        let uid = p.uid.to_uppercase();
        format!("UID={uid},OU={ou},DC=School,DC=Example")
    };
    let mut members: Vec<String> = people
        .iter()
        .filter(|p| p.year.as_deref() == Some("10"))
        .take(3)
        .map(|p| upper(p, "Students"))
        .collect();
    members.push(upper(&tutors[2], "Tutors"));
    groups.push(group("10B/Fr1", members));
    for group in groups.iter() {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: groupOfNames\n{}",
            group.dn,
            value("cn", &group.cn)
        ));
        for member in group.members.iter() {
            ldif.push_str(&value("member", member));
        }
        ldif.push('\n');
    }
    let empty = group("13C/Ps1", Vec::new());
    ldif.push_str(&format!(
        "dn: {}\nobjectClass: posixGroup\n{}gidNumber: 20000\ndescription: No members\n\n",
        empty.dn,
        value("cn", &empty.cn)
    ));
    groups.push(empty);
    let emptied = group("13D/Ps2", vec![String::new()]);
    ldif.push_str(&format!(
        "dn: {}\nobjectClass: groupOfNames\n{}member:\ndescription: No members\n\n",
        emptied.dn,
        value("cn", &emptied.cn)
    ));
    groups.push(emptied);

    Generated {
        ldif,
        students: people,
        tutors,
        groups,
    }
}

fn student(number: usize, uid: &str, given: &str, sn: &str, year: &str, mail: bool) -> Person {
    Person {
        dn: format!("uid={uid},{STUDENTS}"),
        uid: uid.to_owned(),
        given_name: given.to_owned(),
        sn: sn.to_owned(),
        cn: format!("{given} {sn}"),
        employee_number: format!("S{number:06}"),
        year: Some(year.to_owned()),
        mail: mail.then(|| format!("{uid}@students.school.example")),
    }
}

fn group(cn: &str, members: Vec<String>) -> Group {
    Group {
        dn: format!("cn={cn},{GROUPS}"),
        cn: cn.to_owned(),
        members,
    }
}

fn person_ldif(person: &Person, title: Option<&str>) -> String {
    let mut out = format!("dn: {}\nobjectClass: inetOrgPerson\n", person.dn);
    out.push_str(&value("uid", &person.uid));
    out.push_str(&value("cn", &person.cn));
    out.push_str(&value("givenName", &person.given_name));
    out.push_str(&value("sn", &person.sn));
    out.push_str(&value("employeeNumber", &person.employee_number));
    if let Some(year) = &person.year {
        out.push_str(&value("departmentNumber", year));
    }
    if let Some(mail) = &person.mail {
        out.push_str(&value("mail", mail));
    }
    if let Some(title) = title {
        out.push_str(&value("title", title));
    }
    out.push('\n');
    out
}

/// One LDIF attribute line: `name: value`, or `name:: base64` when the value is not a
/// SAFE-STRING (RFC 2849: non-ASCII, or starting with a space, `:` or `<`, or ending in a space).
fn value(name: &str, value: &str) -> String {
    let safe = value
        .bytes()
        .all(|b| b.is_ascii() && b != 0 && b != b'\n' && b != b'\r')
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        format!("{name}: {value}\n")
    } else {
        format!("{name}:: {}\n", STANDARD.encode(value))
    }
}

// --- An Active Directory-shaped school ---------------------------------------------------------

/// The Active Directory attributes and classes a sync reads, with Microsoft's OIDs, as an
/// OpenLDAP schema file; every [`Slapd`] loads it.
///
/// Differences from Active Directory's own definitions, so that slapd accepts them and a
/// test can write them:
/// - Everything is user-modifiable: slapd loads `NO-USER-MODIFICATION` only for operational
///   attributes, and `memberOf`, `objectGUID` and `uSNChanged` are written by the fixture
///   (AD computes them). `memberOf` is a plain attribute here, kept by [`Slapd::add_member`] and
///   friends; no overlay maintains it (OpenLDAP's `memberof` overlay defines a `memberOf` of
///   its own and is not loaded).
/// - `user` derives from `inetOrgPerson` (AD: `organizationalPerson`, with the
///   `inetOrgPerson` attributes added), so `employeeNumber`, `departmentNumber` and `mail` are
///   allowed; `group` does not require `groupType`.
/// - AD syntaxes map to LDAP ones: Large Integer (`uSNChanged`) to INTEGER, Unicode to
///   Directory String.
///
/// slapd's own `integerBitAndMatch` (1.2.840.113556.1.4.803) makes AD's idiom for disabled
/// accounts work: `(userAccountControl:1.2.840.113556.1.4.803:=2)`.
pub const AD_SCHEMA: &str = "\
# Written by tests/it/slapd.rs: Active Directory's user and group, with Microsoft's OIDs.
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
    DESC 'AD: the object identifier that never changes, 16 bytes'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    DESC 'AD: the pre-Windows 2000 logon name'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    DESC 'AD: the logon name in e-mail form'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
    DESC 'AD: account flags; 2 is ACCOUNTDISABLE, 512 NORMAL_ACCOUNT'
    EQUALITY integerMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
    DESC 'AD: the groups the object is a direct member of'
    EQUALITY distinguishedNameMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.2.120 NAME 'uSNChanged'
    DESC 'AD: the update sequence number of the last change'
    EQUALITY integerMatch ORDERING integerOrderingMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.750 NAME 'groupType'
    DESC 'AD: group scope and kind; -2147483646 is a global security group'
    EQUALITY integerMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.35 NAME 'employeeID'
    DESC 'AD: the employee (or student) number'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{16} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department'
    DESC 'AD: the department'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64} SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user'
    DESC 'AD: a user account'
    SUP inetOrgPerson STRUCTURAL
    MAY ( objectGUID $ sAMAccountName $ userPrincipalName $ userAccountControl $
          memberOf $ uSNChanged $ employeeID $ department ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group'
    DESC 'AD: a group; may be empty, may have groups as members'
    SUP top STRUCTURAL
    MUST cn
    MAY ( member $ objectGUID $ sAMAccountName $ groupType $ description $ mail $
          memberOf $ uSNChanged ) )
";

/// The highest `uSNChanged: N` in `ldif` (0 without any).
fn highest_usn_in(ldif: &str) -> u64 {
    ldif.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("uSNChanged")
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .max()
        .unwrap_or(0)
}

/// Where [`ad_school_ldif`] puts things, spelled as Active Directory spells DNs (upper-case
/// attribute types). slapd returns entry DNs with its own spelling of the types (`cn=`, `ou=`,
/// `dc=`) and `\,` as `\2C`; values of `member` and `memberOf` come back as written.
pub const AD_BASE: &str = "DC=school,DC=example";
pub const AD_STUDENTS: &str = "OU=Students,DC=school,DC=example";
pub const AD_STAFF: &str = "OU=Staff,DC=school,DC=example";
pub const AD_GROUPS: &str = "OU=Groups,DC=school,DC=example";

/// `userAccountControl` flags.
pub const UAC_ACCOUNTDISABLE: u32 = 0x2;
pub const UAC_NORMAL_ACCOUNT: u32 = 0x200;
pub const UAC_DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;

/// `groupType` of a global security group (`0x80000002` as a signed 32-bit integer).
pub const GLOBAL_SECURITY_GROUP: i32 = -2_147_483_646;

/// The `uSNChanged` of the first entry [`ad_school_ldif`] writes; each next one gets one more.
pub const AD_FIRST_USN: u64 = 12_000;

/// The OU of a year group's students: `OU=Year 12,OU=Students,DC=school,DC=example`.
pub fn ad_year_ou(year: &str) -> String {
    format!("OU=Year {year},{AD_STUDENTS}")
}

/// The student [`ad_school_ldif`] writes after the [`SPECIAL_STUDENTS`] (employee number
/// S000009): `(sAMAccountName, givenName, sn, year)`, a leaver whose account is disabled
/// (`userAccountControl` 514).
pub const AD_DISABLED_STUDENT: (&str, &str, &str, &str) = ("lleaver", "Lucy", "Leaver", "11");

/// A generated Active Directory school: its LDIF (for [`Slapd::start`]) and what is in it.
pub struct AdGenerated {
    pub ldif: String,
    /// In the order written: the [`SPECIAL_STUDENTS`], the [`AD_DISABLED_STUDENT`], the others.
    pub students: Vec<AdPerson>,
    /// The tutors, under [`AD_STAFF`].
    pub staff: Vec<AdPerson>,
    pub groups: Vec<AdGroup>,
    /// The highest `uSNChanged` written (the last group's); [`Slapd::highest_usn`] starts here.
    pub highest_usn: u64,
}

/// A `user`.
#[derive(Clone, Debug)]
pub struct AdPerson {
    /// As written in the LDIF: `CN=James Smith,OU=Year 12,OU=Students,DC=school,DC=example`.
    pub dn: String,
    /// `"{given_name} {sn}"`, except one tutor's `"Cohen, David"` (DN `CN=Cohen\, David,…`).
    pub cn: String,
    pub sam_account_name: String,
    /// `<sAMAccountName>@school.example`.
    pub user_principal_name: String,
    pub given_name: String,
    pub sn: String,
    /// `"{given_name} {sn}"`.
    pub display_name: String,
    /// `<sAMAccountName>@students.school.example` for students, `…@school.example` for
    /// staff; `None` for the one student without `mail`.
    pub mail: Option<String>,
    /// `employeeNumber`: `S000001`… for students, `T00001`… for staff.
    pub employee_number: String,
    /// `departmentNumber`, the year group ("7" to "13"); `None` for staff.
    pub year: Option<String>,
    /// `objectGUID`, as on the wire: 16 bytes.
    pub object_guid: [u8; 16],
    /// The GUID as Microsoft prints it (`{…}` without braces): the first three fields of the
    /// bytes little-endian, i.e. `Uuid::from_bytes_le(object_guid)`.
    pub guid: String,
    /// 512, 514 (disabled) or 66048 (a tutor whose password never expires).
    pub user_account_control: u32,
    /// The groups it is a direct member of (their DNs as written).
    pub member_of: Vec<String>,
    pub usn_changed: u64,
}

impl AdPerson {
    /// `ACCOUNTDISABLE` is set in `userAccountControl`.
    pub fn disabled(&self) -> bool {
        self.user_account_control & UAC_ACCOUNTDISABLE != 0
    }
}

/// A `group` (a global security group).
#[derive(Clone, Debug)]
pub struct AdGroup {
    /// `CN=12A/Ma1,OU=Groups,DC=school,DC=example` (a `/` needs no escaping in LDAP).
    pub dn: String,
    pub cn: String,
    /// The `cn` with `/` as `-` (AD refuses `/` in `sAMAccountName`).
    pub sam_account_name: String,
    pub object_guid: [u8; 16],
    /// As [`AdPerson::guid`].
    pub guid: String,
    /// The `member` values as written: people and groups.
    pub members: Vec<String>,
    /// Those of `members` that are groups.
    pub nested: Vec<String>,
    /// The groups this group is a direct member of.
    pub member_of: Vec<String>,
    pub usn_changed: u64,
}

impl AdGenerated {
    /// The student or tutor with this `sAMAccountName`.
    #[track_caller]
    pub fn person(&self, sam_account_name: &str) -> &AdPerson {
        self.students
            .iter()
            .chain(&self.staff)
            .find(|p| p.sam_account_name == sam_account_name)
            .unwrap_or_else(|| panic!("no person {sam_account_name}"))
    }

    /// The group with this `cn`.
    #[track_caller]
    pub fn group(&self, cn: &str) -> &AdGroup {
        self.groups
            .iter()
            .find(|g| g.cn == cn)
            .unwrap_or_else(|| panic!("no group {cn}"))
    }

    /// Everyone in the group `cn`, directly or through nested groups, each once, in the order
    /// first met (depth first, in `member` order). Member DNs compare case-insensitively.
    pub fn people_in(&self, cn: &str) -> Vec<&AdPerson> {
        fn walk<'a>(
            group: &'a AdGroup,
            people: &HashMap<String, &'a AdPerson>,
            groups: &HashMap<String, &'a AdGroup>,
            seen: &mut HashSet<String>,
            found: &mut Vec<&'a AdPerson>,
        ) {
            for member in group.members.iter() {
                let key = member.to_lowercase();
                if !seen.insert(key.clone()) {
                    continue;
                }
                if let Some(person) = people.get(&key) {
                    found.push(person);
                } else if let Some(nested) = groups.get(&key) {
                    walk(nested, people, groups, seen, found);
                }
            }
        }
        let people: HashMap<String, &AdPerson> = self
            .students
            .iter()
            .chain(&self.staff)
            .map(|p| (p.dn.to_lowercase(), p))
            .collect();
        let groups: HashMap<String, &AdGroup> = self
            .groups
            .iter()
            .map(|g| (g.dn.to_lowercase(), g))
            .collect();
        let group = self.group(cn);
        let mut seen = HashSet::from([group.dn.to_lowercase()]);
        let mut found = Vec::new();
        walk(group, &people, &groups, &mut seen, &mut found);
        found
    }
}

/// An Active Directory-shaped school with `students` students (at least the 9 special ones),
/// 6 tutors and 13 groups, all deterministic, under [`BASE`] next to `ou=Service` (the
/// reader). DNs are written as AD writes them (`CN=…,OU=…,DC=school,DC=example`).
///
/// - `OU=Students`, one OU per year (`OU=Year 12,OU=Students,…`, see [`ad_year_ou`]):
///   `user` (`objectClass: top, person, organizationalPerson, user`, as AD lists them) named
///   `CN=<given> <sn>`, with `givenName`, `sn`, `displayName`, `sAMAccountName`,
///   `userPrincipalName`, `mail`, `employeeNumber` (`S000001`…), `departmentNumber` (the
///   year), `userAccountControl`, `objectGUID`, `memberOf` and `uSNChanged`. First the
///   [`SPECIAL_STUDENTS`] (twins, non-ASCII names, apostrophes, no `mail`…), then the
///   [`AD_DISABLED_STUDENT`] (514), then students named from fixed lists, `sAMAccountName`
///   initial + surname + number, year = index modulo 7. Names recur, but never within a year
///   (up to 4,200 students).
/// - `OU=Staff`: the 6 tutors (`T00001`…, `title: Teacher`, `mail` = UPN); David Cohen's
///   `cn` is `Cohen, David` (DN `CN=Cohen\, David,OU=Staff,…`), Thomas O'Brien's
///   `userAccountControl` is 66048 (normal + password never expires: enabled, yet not 512).
/// - `OU=Groups`, global security groups (`groupType` −2147483646), members written
///   before the groups they belong to:
///   - `7A/Ma1` … `13A/Ma1` but year 12's: every student of the year and a tutor;
///   - `12A/Ma1` and `12B/Ma1`: year 12 split alternately (James in A, Jane in B), each with
///     a tutor (12B's is David Cohen, whose DN has an escaped comma);
///   - `12B/En1`: the twins and the next 3 year-12 students (so they are in two groups) and a
///     tutor;
///   - `10B/Fr1`: the first 3 year-10 students and a tutor; Zoë's DN is written in lower case
///     (`cn=zoë ó súilleabháin,ou=year 10,…`);
///   - `Year 12 Maths`: nested: the groups `12A/Ma1` and `12B/Ma1` and, directly, their
///     head of department (Margaret Hughes, also the tutor of `12A/Ma1`);
///   - `Maths Department`: nested two deep: `Year 12 Maths` and `13A/Ma1`;
///   - `Chess Club`: no members (AD allows an empty group).
///
///   Every member has the group in its `memberOf` (groups too, as in AD).
/// - `objectGUID`s are derived from the `sAMAccountName` (groups: the `cn`) with SHA-256 and
///   carry the version-4 and RFC 4122 variant bits, as Windows' GUIDs do. Their byte 7 is
///   then ASCII (`0x4_`) and byte 8 a UTF-8 continuation byte, so they are never valid UTF-8:
///   `ldap3` always puts them in `bin_attrs`.
/// - `uSNChanged`: [`AD_FIRST_USN`] for the first user, one more for each entry after, in
///   LDIF order (students, staff, groups).
pub fn ad_school_ldif(students: usize) -> AdGenerated {
    let specials = SPECIAL_STUDENTS.len() + 1;
    assert!(
        students >= specials,
        "the directory has at least the {specials} special students"
    );
    let mut people: Vec<AdPerson> = Vec::with_capacity(students);
    let special = SPECIAL_STUDENTS
        .iter()
        .map(|&(sam, given, sn, year, mail)| (sam, given, sn, year, mail, UAC_NORMAL_ACCOUNT));
    let (sam, given, sn, year) = AD_DISABLED_STUDENT;
    let leaver = (
        sam,
        given,
        sn,
        year,
        true,
        UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE,
    );
    for (i, (sam, given, sn, year, mail, uac)) in special.chain([leaver]).enumerate() {
        people.push(ad_student(i + 1, sam, given, sn, year, mail, uac));
    }
    for i in specials..students {
        let number = i + 1;
        let given = GIVEN_NAMES[i % GIVEN_NAMES.len()];
        let sn = SURNAMES[(i / GIVEN_NAMES.len()) % SURNAMES.len()];
        let sam = format!("{}{}{number}", given[..1].to_lowercase(), sn.to_lowercase());
        let year = (7 + i % 7).to_string();
        people.push(ad_student(
            number,
            &sam,
            given,
            sn,
            &year,
            true,
            UAC_NORMAL_ACCOUNT,
        ));
    }
    let mut staff: Vec<AdPerson> = TUTOR_NAMES
        .iter()
        .enumerate()
        .map(|(i, &(sam, given, sn))| {
            let cn = if sam == "dcohen" {
                format!("{sn}, {given}")
            } else {
                format!("{given} {sn}")
            };
            let uac = if sam == "tobrien" {
                UAC_NORMAL_ACCOUNT | UAC_DONT_EXPIRE_PASSWORD
            } else {
                UAC_NORMAL_ACCOUNT
            };
            let mut person = ad_person(sam, given, sn, &cn, AD_STAFF, uac);
            person.mail = Some(person.user_principal_name.clone());
            person.employee_number = format!("T{:05}", i + 1);
            person
        })
        .collect();

    // The groups, their members as written.
    let in_year = |year: &str| -> Vec<&AdPerson> {
        people
            .iter()
            .filter(|p| p.year.as_deref() == Some(year))
            .collect()
    };
    let dns =
        |people: &[&AdPerson]| -> Vec<String> { people.iter().map(|p| p.dn.clone()).collect() };
    let mut groups: Vec<AdGroup> = Vec::new();
    for (i, year) in YEARS.enumerate() {
        let year = year.to_string();
        if year == "12" {
            continue;
        }
        let mut members = dns(&in_year(&year));
        members.push(staff[i % staff.len()].dn.clone());
        groups.push(ad_group(&format!("{year}A/Ma1"), members));
    }
    let year12 = in_year("12");
    for (set, parity, tutor) in [("12A/Ma1", 0, 0), ("12B/Ma1", 1, 5)] {
        let mut members: Vec<String> = year12
            .iter()
            .skip(parity)
            .step_by(2)
            .map(|p| p.dn.clone())
            .collect();
        members.push(staff[tutor].dn.clone());
        groups.push(ad_group(set, members));
    }
    let mut members = dns(&year12[..year12.len().min(5)]);
    members.push(staff[4].dn.clone());
    groups.push(ad_group("12B/En1", members));
    let mut members = dns(&in_year("10")[..in_year("10").len().min(3)]);
    if let Some(first) = members.first_mut() {
        *first = first.to_lowercase();
    }
    members.push(staff[2].dn.clone());
    groups.push(ad_group("10B/Fr1", members));
    let dn_of =
        |groups: &[AdGroup], cn: &str| groups.iter().find(|g| g.cn == cn).unwrap().dn.clone();
    let members = vec![
        dn_of(&groups, "12A/Ma1"),
        dn_of(&groups, "12B/Ma1"),
        staff[0].dn.clone(),
    ];
    groups.push(ad_group("Year 12 Maths", members));
    let members = vec![dn_of(&groups, "Year 12 Maths"), dn_of(&groups, "13A/Ma1")];
    groups.push(ad_group("Maths Department", members));
    groups.push(ad_group("Chess Club", Vec::new()));

    // Back-links, and which members are groups.
    let mut unique = HashSet::new();
    for dn in people.iter().chain(&staff).map(|p| &p.dn) {
        assert!(unique.insert(dn.to_lowercase()), "two people named {dn}");
    }
    let group_dns: HashSet<String> = groups.iter().map(|g| g.dn.to_lowercase()).collect();
    let mut member_of: HashMap<String, Vec<String>> = HashMap::new();
    for group in groups.iter_mut() {
        for member in group.members.iter() {
            let key = member.to_lowercase();
            assert!(
                unique.contains(&key) || group_dns.contains(&key),
                "{member} names nothing"
            );
            if group_dns.contains(&key) {
                group.nested.push(member.clone());
            }
            member_of.entry(key).or_default().push(group.dn.clone());
        }
    }
    for person in people.iter_mut().chain(staff.iter_mut()) {
        person.member_of = member_of
            .get(&person.dn.to_lowercase())
            .cloned()
            .unwrap_or_default();
    }
    for group in groups.iter_mut() {
        group.member_of = member_of
            .get(&group.dn.to_lowercase())
            .cloned()
            .unwrap_or_default();
    }

    // The LDIF: organizational units, people, then groups.
    let mut ldif = String::new();
    let mut ous = vec![
        AD_STUDENTS.to_owned(),
        AD_STAFF.to_owned(),
        AD_GROUPS.to_owned(),
    ];
    ous.splice(1..1, YEARS.map(|year| ad_year_ou(&year.to_string())));
    for ou in ous {
        let (rdn, _) = split_rdn(&ou);
        let name = &rdn["OU=".len()..];
        ldif.push_str(&format!(
            "{}objectClass: top\nobjectClass: organizationalUnit\nou: {name}\n\n",
            value("dn", &ou)
        ));
    }
    let mut usn = AD_FIRST_USN;
    let mut next_usn = || {
        let this = usn;
        usn += 1;
        this
    };
    for person in people.iter_mut() {
        person.usn_changed = next_usn();
        ldif.push_str(&ad_person_ldif(person, None));
    }
    for person in staff.iter_mut() {
        person.usn_changed = next_usn();
        ldif.push_str(&ad_person_ldif(person, Some("Teacher")));
    }
    for group in groups.iter_mut() {
        group.usn_changed = next_usn();
        ldif.push_str(&value("dn", &group.dn));
        ldif.push_str("objectClass: top\nobjectClass: group\n");
        ldif.push_str(&value("cn", &group.cn));
        ldif.push_str(&value("sAMAccountName", &group.sam_account_name));
        ldif.push_str(&format!("groupType: {GLOBAL_SECURITY_GROUP}\n"));
        ldif.push_str(&format!(
            "objectGUID:: {}\n",
            STANDARD.encode(group.object_guid)
        ));
        for member in group.members.iter() {
            ldif.push_str(&value("member", member));
        }
        for parent in group.member_of.iter() {
            ldif.push_str(&value("memberOf", parent));
        }
        ldif.push_str(&format!("uSNChanged: {}\n\n", group.usn_changed));
    }
    let highest_usn = usn - 1;

    AdGenerated {
        ldif,
        students: people,
        staff,
        groups,
        highest_usn,
    }
}

fn ad_student(
    number: usize,
    sam: &str,
    given: &str,
    sn: &str,
    year: &str,
    mail: bool,
    user_account_control: u32,
) -> AdPerson {
    let cn = format!("{given} {sn}");
    let mut person = ad_person(sam, given, sn, &cn, &ad_year_ou(year), user_account_control);
    person.mail = mail.then(|| format!("{sam}@students.school.example"));
    person.employee_number = format!("S{number:06}");
    person.year = Some(year.to_owned());
    person
}

/// A user in `parent`, without `mail`, employee number or year yet.
fn ad_person(
    sam: &str,
    given: &str,
    sn: &str,
    cn: &str,
    parent: &str,
    user_account_control: u32,
) -> AdPerson {
    let object_guid = ad_guid(sam);
    AdPerson {
        dn: format!("CN={},{parent}", rdn_value(cn)),
        cn: cn.to_owned(),
        sam_account_name: sam.to_owned(),
        user_principal_name: format!("{sam}@school.example"),
        given_name: given.to_owned(),
        sn: sn.to_owned(),
        display_name: format!("{given} {sn}"),
        mail: None,
        employee_number: String::new(),
        year: None,
        object_guid,
        guid: uuid::Uuid::from_bytes_le(object_guid).to_string(),
        user_account_control,
        member_of: Vec::new(),
        usn_changed: 0,
    }
}

fn ad_group(cn: &str, members: Vec<String>) -> AdGroup {
    let object_guid = ad_guid(&format!("group {cn}"));
    AdGroup {
        dn: format!("CN={},{AD_GROUPS}", rdn_value(cn)),
        cn: cn.to_owned(),
        sam_account_name: cn.replace('/', "-"),
        object_guid,
        guid: uuid::Uuid::from_bytes_le(object_guid).to_string(),
        members,
        nested: Vec::new(),
        member_of: Vec::new(),
        usn_changed: 0,
    }
}

/// A random-looking but deterministic `objectGUID` for `key`: SHA-256, with the version-4 and
/// variant bits where Windows puts them (bytes 7 and 8 of the little-endian layout).
fn ad_guid(key: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("objectGUID {key}").as_bytes());
    let mut guid: [u8; 16] = digest[..16].try_into().unwrap();
    guid[7] = (guid[7] & 0x0f) | 0x40;
    guid[8] = (guid[8] & 0x3f) | 0x80;
    guid
}

fn ad_person_ldif(person: &AdPerson, title: Option<&str>) -> String {
    let mut out = value("dn", &person.dn);
    out.push_str("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n");
    out.push_str("objectClass: user\n");
    out.push_str(&value("cn", &person.cn));
    out.push_str(&value("sn", &person.sn));
    out.push_str(&value("givenName", &person.given_name));
    out.push_str(&value("displayName", &person.display_name));
    out.push_str(&value("sAMAccountName", &person.sam_account_name));
    out.push_str(&value("userPrincipalName", &person.user_principal_name));
    if let Some(mail) = &person.mail {
        out.push_str(&value("mail", mail));
    }
    out.push_str(&value("employeeNumber", &person.employee_number));
    if let Some(year) = &person.year {
        out.push_str(&value("departmentNumber", year));
    }
    if let Some(title) = title {
        out.push_str(&value("title", title));
    }
    out.push_str(&format!(
        "userAccountControl: {}\n",
        person.user_account_control
    ));
    out.push_str(&format!(
        "objectGUID:: {}\n",
        STANDARD.encode(person.object_guid)
    ));
    for group in person.member_of.iter() {
        out.push_str(&value("memberOf", group));
    }
    out.push_str(&format!("uSNChanged: {}\n\n", person.usn_changed));
    out
}

/// `value` escaped for an RDN (RFC 4514): `,+"\<>;` and `=` with a backslash, a leading `#`
/// or space and a trailing space too.
pub fn rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A DN's first RDN and the rest (its parent's DN; empty for a one-RDN DN), split at the
/// first comma not escaped with a backslash.
fn split_rdn(dn: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, b) in dn.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b',' => return (&dn[..i], dn[i + 1..].trim_start()),
            _ => {}
        }
    }
    (dn, "")
}

/// `value` escaped for a filter assertion (RFC 4515): `*()\` and NUL as `\XX`.
fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

// --- Reading ldapsearch's output ---------------------------------------------------------------

/// What `ldapsearch -LLL` did: its exit code (0, 4 for "Size limit exceeded", 32 for "No such
/// object", 49 for "Invalid credentials"…), stderr, and the entries it printed, decoded.
pub struct Search {
    pub code: i32,
    pub stderr: String,
    pub entries: Vec<Entry>,
}

impl Search {
    fn new(output: Output) -> Search {
        let stdout = String::from_utf8(output.stdout).unwrap();
        Search {
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            entries: parse_ldif(&stdout),
        }
    }

    /// The entry with this DN (compared exactly).
    #[track_caller]
    pub fn entry(&self, dn: &str) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.dn == dn)
            .unwrap_or_else(|| panic!("no entry {dn} in the result ({})", self.stderr))
    }
}

/// An entry: its DN and attribute values, base64 decoded, in the order printed.
#[derive(Debug)]
pub struct Entry {
    pub dn: String,
    /// The values that are UTF-8.
    pub attributes: Vec<(String, String)>,
    /// The values that are not (`objectGUID`'s, for one).
    pub binary: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// The values of `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of `name` (compared case-insensitively) as bytes, text or not.
    pub fn bytes(&self, name: &str) -> Vec<&[u8]> {
        let text = self
            .attributes
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes());
        let binary = self
            .binary
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice());
        text.chain(binary).collect()
    }
}

/// Parses LDIF content records (what `ldapsearch -LLL` prints): folded lines, `#` comments,
/// `name:: base64` values (into [`Entry::binary`] when they are not UTF-8).
pub fn parse_ldif(text: &str) -> Vec<Entry> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) if !last.is_empty() => last.push_str(rest),
            _ => lines.push(line.to_owned()),
        }
    }
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            entries.extend(current.take());
            continue;
        }
        let (name, rest) = line.split_once(':').expect("an LDIF line has a colon");
        let value = if let Some(encoded) = rest.strip_prefix(':') {
            let bytes = STANDARD.decode(encoded.trim()).unwrap();
            String::from_utf8(bytes).map_err(|e| e.into_bytes())
        } else {
            Ok(rest.strip_prefix(' ').unwrap_or(rest).to_owned())
        };
        match (current.as_mut(), value) {
            (None, value) => {
                assert_eq!(name, "dn", "an entry starts with its dn: {line}");
                current = Some(Entry {
                    dn: value.expect("a DN is UTF-8"),
                    attributes: Vec::new(),
                    binary: Vec::new(),
                });
            }
            (Some(entry), Ok(text)) => entry.attributes.push((name.to_owned(), text)),
            (Some(entry), Err(bytes)) => entry.binary.push((name.to_owned(), bytes)),
        }
    }
    entries.extend(current);
    entries
}

// --- The fixture's own tests -------------------------------------------------------------------

#[test]
fn unpaged_searches_stop_at_the_size_limit_except_for_the_rootdn() {
    let school = school_ldif(1200);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let students = [
        "-b",
        STUDENTS,
        "(objectClass=inetOrgPerson)",
        "employeeNumber",
    ];

    let unpaged = slapd.ldapsearch(&slapd.reader_dn, &slapd.reader_password, &students);
    assert_eq!(unpaged.code, 4, "{}", unpaged.stderr);
    assert!(
        unpaged.stderr.contains("Size limit exceeded"),
        "{}",
        unpaged.stderr
    );
    assert_eq!(unpaged.entries.len(), SIZE_LIMIT);

    let mut args = vec!["-E", "pr=500/noprompt"];
    args.extend(students);
    let paged = slapd.ldapsearch(&slapd.reader_dn, &slapd.reader_password, &args);
    assert_eq!(paged.code, 0, "{}", paged.stderr);
    let mut numbers: Vec<&str> = paged
        .entries
        .iter()
        .map(|e| e.get("employeeNumber")[0])
        .collect();
    numbers.sort_unstable();
    let expected: Vec<&str> = school
        .students
        .iter()
        .map(|p| p.employee_number.as_str())
        .collect();
    assert_eq!(numbers, expected);
    assert_eq!(numbers.len(), 1200);

    let root = slapd.ldapsearch(&slapd.admin_dn, &slapd.admin_password, &students);
    assert_eq!(root.code, 0, "{}", root.stderr);
    assert_eq!(root.entries.len(), 1200);
}

#[test]
fn the_special_entries_exist_and_decode() {
    let school = school_ldif(40);
    assert_eq!(school.students.len(), 40);
    assert_eq!(school.tutors.len(), 6);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let all = slapd.search_as_reader(&["(objectClass=*)", "*"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    // Base, 4 organizational units, the reader, the people and the groups.
    assert_eq!(all.entries.len(), 6 + 40 + 6 + school.groups.len());

    for person in school.students.iter().chain(&school.tutors) {
        let entry = all.entry(&person.dn);
        assert_eq!(entry.get("uid"), [person.uid.as_str()]);
        assert_eq!(entry.get("cn"), [person.cn.as_str()], "{}", person.dn);
        assert_eq!(entry.get("givenName"), [person.given_name.as_str()]);
        assert_eq!(entry.get("sn"), [person.sn.as_str()]);
        assert_eq!(entry.get("employeeNumber"), [&*person.employee_number]);
        assert_eq!(
            entry.get("departmentNumber"),
            Vec::from_iter(person.year.as_deref())
        );
        assert_eq!(entry.get("mail"), Vec::from_iter(person.mail.as_deref()));
    }

    let zoe = all.entry("uid=zosuilleabhain,ou=Students,dc=school,dc=example");
    assert_eq!(zoe.get("cn"), ["Zoë Ó Súilleabháin"]);
    let lukasz = all.entry("uid=lzolc,ou=Students,dc=school,dc=example");
    assert_eq!(lukasz.get("givenName"), ["Łukasz"]);
    assert_eq!(lukasz.get("sn"), ["Żółć"]);
    let darcy = all.entry("uid=doneill,ou=Students,dc=school,dc=example");
    assert_eq!(darcy.get("cn"), ["D'Arcy O'Neill"]);
    let pieter = all.entry("uid=pvanderberg,ou=Students,dc=school,dc=example");
    assert_eq!(pieter.get("sn"), ["van der Berg"]);
    let noah = all.entry("uid=nwilliams,ou=Students,dc=school,dc=example");
    assert_eq!(noah.get("mail"), Vec::<&str>::new());
    assert_eq!(noah.get("employeeNumber"), ["S000008"]);
    let twins = ["jsmith", "jsmith2"].map(|uid| all.entry(&format!("uid={uid},{STUDENTS}")));
    assert_eq!(twins.map(|t| t.get("sn")), [["Smith"], ["Smith"]]);
    assert_eq!(twins.map(|t| t.get("givenName")), [["James"], ["Jane"]]);
    // The reader reads its own password hash (`by self write`), and nobody else's.
    assert!(all.entry(READER_DN).get("userPassword")[0].starts_with("{SSHA}"));

    for group in school.groups.iter() {
        let entry = all.entry(&group.dn);
        assert_eq!(entry.get("cn"), [group.cn.as_str()]);
        assert_eq!(entry.get("member"), group.members, "{}", group.dn);
    }
    let cns: Vec<&str> = school.groups.iter().map(|g| g.cn.as_str()).collect();
    assert_eq!(
        cns,
        [
            "7A/Ma1", "8A/Ma1", "9A/Ma1", "10A/Ma1", "11A/Ma1", "12A/Ma1", "13A/Ma1", "12B/En1",
            "10B/Fr1", "13C/Ps1", "13D/Ps2"
        ]
    );
    let members = |cn: &str| {
        all.entry(&format!("cn={cn},{GROUPS}"))
            .get("member")
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // 40 students: the 8 special ones, then years 8, 9, …, 13, 7, 8, … from index 8, so
    // 4 more in year 12.
    assert_eq!(members("12A/Ma1").len(), 2 + 4 + 1);
    assert_eq!(
        members("12A/Ma1")[..2],
        [twins[0].dn.clone(), twins[1].dn.clone()]
    );
    assert_eq!(members("12B/En1").len(), 5 + 1);
    assert_eq!(members("12B/En1")[0], twins[0].dn);
    assert_eq!(
        members("10B/Fr1"),
        [
            "UID=ZOSUILLEABHAIN,OU=Students,DC=School,DC=Example",
            "UID=OBROWN11,OU=Students,DC=School,DC=Example",
            "UID=RBROWN18,OU=Students,DC=School,DC=Example",
            "UID=SEVANS,OU=Tutors,DC=School,DC=Example",
        ]
    );
    let empty = all.entry(&format!("cn=13C/Ps1,{GROUPS}"));
    assert_eq!(empty.get("objectClass"), ["posixGroup"]);
    assert_eq!(empty.get("member"), Vec::<&str>::new());
    assert_eq!(empty.get("memberUid"), Vec::<&str>::new());
    assert_eq!(members("13D/Ps2"), [""]);

    // The other-case DNs name the same entries: a search with one as its base finds Zoë.
    let zoe = slapd.ldapsearch(
        &slapd.reader_dn,
        &slapd.reader_password,
        &[
            "-s",
            "base",
            "-b",
            "UID=ZOSUILLEABHAIN,OU=Students,DC=School,DC=Example",
            "employeeNumber",
        ],
    );
    assert_eq!(zoe.code, 0, "{}", zoe.stderr);
    assert_eq!(zoe.entries[0].get("employeeNumber"), ["S000003"]);
}

#[test]
fn a_wrong_password_or_no_bind_gets_nothing() {
    let school = school_ldif(8);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let wrong = slapd.ldapsearch(&slapd.reader_dn, "wrong", &["-b", BASE, "(uid=*)"]);
    assert_eq!(wrong.code, 49, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("Invalid credentials"),
        "{}",
        wrong.stderr
    );
    assert!(wrong.entries.is_empty());

    // Anonymous: not even the base is visible.
    let anonymous = slapd.ldapsearch("", "", &["-b", BASE, "(uid=*)"]);
    assert_eq!(anonymous.code, 32, "{}", anonymous.stderr);
    assert!(anonymous.entries.is_empty());

    // The reader reads no student's password.
    let reader = slapd.search_as_reader(&["(uid=jsmith)", "userPassword", "uid"]);
    assert_eq!(reader.code, 0, "{}", reader.stderr);
    assert_eq!(reader.entries[0].get("uid"), ["jsmith"]);
    assert_eq!(reader.entries[0].get("userPassword"), Vec::<&str>::new());
}

#[test]
fn two_servers_run_at_once_and_dropping_one_stops_it() {
    let school = school_ldif(8);
    let (Some(first), Some(second)) = (Slapd::start(&school.ldif), Slapd::start("")) else {
        return;
    };
    assert_ne!(first.url, second.url);
    let count = |slapd: &Slapd| {
        let search = slapd.search_as_reader(&["(objectClass=inetOrgPerson)", "1.1"]);
        assert_eq!(search.code, 0, "{}\n{}", search.stderr, slapd.log());
        search.entries.len()
    };
    assert_eq!(count(&first), 8 + 6);
    assert_eq!(count(&second), 0);

    let pid = first.pid();
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc.exists());
    drop(first);
    assert!(!proc.exists(), "slapd {pid} still runs");
    assert_eq!(count(&second), 0);
}

#[test]
fn a_taken_port_makes_slapd_try_another() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let Some(slapd) = Slapd::start_on(&school_ldif(8).ldif, Some(port)) else {
        return;
    };
    assert_ne!(slapd.url, format!("ldap://127.0.0.1:{port}"));
    let search = slapd.search_as_reader(&["(uid=jsmith)", "1.1"]);
    assert_eq!(search.code, 0, "{}\n{}", search.stderr, slapd.log());
    assert_eq!(search.entries.len(), 1);
}

#[test]
fn changes_by_the_rootdn_are_seen_and_the_sync_control_is_served() {
    let school = school_ldif(8);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    slapd.modify(&format!(
        "dn: uid=jsmith2,{STUDENTS}\n\
         changetype: modify\n\
         replace: sn\n\
         sn: Smith-Brown\n\
         \n\
         dn: uid=nwilliams,{STUDENTS}\n\
         changetype: delete\n"
    ));
    let students = slapd.search_as_reader(&[
        "-E",
        "!sync=ro",
        "(objectClass=inetOrgPerson)",
        "sn",
        "entryUUID",
    ]);
    assert_eq!(students.code, 0, "{}\n{}", students.stderr, slapd.log());
    assert_eq!(students.entries.len(), 8 - 1 + 6);
    let jane = students.entry(&format!("uid=jsmith2,{STUDENTS}"));
    assert_eq!(jane.get("sn"), ["Smith-Brown"]);
    assert_eq!(jane.get("entryUUID")[0].len(), 36);
}

#[test]
fn an_active_directory_school_loads_with_binary_guids_back_links_and_flags() {
    let school = ad_school_ldif(40);
    assert_eq!(school.students.len(), 40);
    assert_eq!(school.staff.len(), 6);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    assert_eq!(slapd.highest_usn(), school.highest_usn);
    let all = slapd.search_as_reader(&["(objectClass=*)", "*"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    // Base, ou=Service, the reader, 3 + 7 organizational units, people and groups.
    assert_eq!(
        all.entries.len(),
        3 + 10 + 40 + 6 + school.groups.len(),
        "{}",
        slapd.log()
    );
    let by_sam = |sam: &str| {
        all.entries
            .iter()
            .find(|e| e.get("sAMAccountName") == [sam])
            .unwrap_or_else(|| panic!("no {sam}"))
    };

    for person in school.students.iter().chain(&school.staff) {
        let entry = by_sam(&person.sam_account_name);
        // slapd spells the attribute types its own way; the values are as written.
        assert_eq!(
            entry.dn.to_lowercase(),
            person.dn.to_lowercase().replace("\\,", "\\2c")
        );
        assert_eq!(entry.get("cn"), [person.cn.as_str()]);
        assert_eq!(entry.get("givenName"), [person.given_name.as_str()]);
        assert_eq!(entry.get("sn"), [person.sn.as_str()]);
        assert_eq!(entry.get("displayName"), [person.display_name.as_str()]);
        assert_eq!(
            entry.get("userPrincipalName"),
            [&*person.user_principal_name]
        );
        assert_eq!(entry.get("mail"), Vec::from_iter(person.mail.as_deref()));
        assert_eq!(entry.get("employeeNumber"), [&*person.employee_number]);
        assert_eq!(
            entry.get("departmentNumber"),
            Vec::from_iter(person.year.as_deref())
        );
        let flags = person.user_account_control.to_string();
        assert_eq!(entry.get("userAccountControl"), [flags.as_str()]);
        assert_eq!(entry.get("memberOf"), person.member_of);
        assert!(!person.member_of.is_empty(), "{} is in a group", person.dn);
        assert_eq!(entry.get("uSNChanged"), [person.usn_changed.to_string()]);
        assert_eq!(entry.bytes("objectGUID"), [person.object_guid.as_slice()]);
        assert!(entry.get("objectGUID").is_empty(), "never valid UTF-8");
        assert_eq!(
            entry.get("objectClass"),
            ["top", "person", "organizationalPerson", "user"]
        );
    }
    let zoe = school.person("zosuilleabhain");
    assert_eq!(
        zoe.dn,
        "CN=Zoë Ó Súilleabháin,OU=Year 10,OU=Students,DC=school,DC=example"
    );
    assert_eq!(
        by_sam("dcohen").dn,
        "cn=Cohen\\2C David,ou=Staff,dc=school,dc=example"
    );
    assert_eq!(
        by_sam("jsmith").dn,
        "cn=James Smith,ou=Year 12,ou=Students,dc=school,dc=example"
    );
    assert_eq!(
        school.person("dcohen").dn,
        format!("CN=Cohen\\, David,{AD_STAFF}")
    );
    assert_eq!(school.person("tobrien").user_account_control, 66048);
    assert!(!school.person("tobrien").disabled());
    let disabled: Vec<&str> = school
        .students
        .iter()
        .chain(&school.staff)
        .filter(|p| p.disabled())
        .map(|p| p.sam_account_name.as_str())
        .collect();
    assert_eq!(disabled, [AD_DISABLED_STUDENT.0]);
    // Active Directory's idiom for disabled accounts works: slapd has integerBitAndMatch.
    let found = slapd.search_as_reader(&[
        "(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2))",
        "sAMAccountName",
    ]);
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].get("sAMAccountName"), ["lleaver"]);

    // The GUID's text form is Microsoft's: the first three fields little-endian.
    let guid = &zoe.object_guid;
    let first: String = guid[..4].iter().rev().map(|b| format!("{b:02x}")).collect();
    assert_eq!(zoe.guid[..8], first);
    assert_eq!(&zoe.guid[14..15], "4", "{}", zoe.guid);
    assert!("89ab".contains(&zoe.guid[19..20]), "{}", zoe.guid);
    let filter: String = guid.iter().map(|b| format!("\\{b:02x}")).collect();
    let found = slapd.search_as_reader(&[&format!("(objectGUID={filter})"), "sAMAccountName"]);
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].get("sAMAccountName"), ["zosuilleabhain"]);

    for group in school.groups.iter() {
        let entry = by_sam(&group.sam_account_name);
        assert_eq!(entry.get("cn"), [group.cn.as_str()]);
        assert_eq!(entry.get("member"), group.members, "{}", group.dn);
        assert_eq!(entry.get("memberOf"), group.member_of, "{}", group.dn);
        assert_eq!(entry.get("groupType"), [GLOBAL_SECURITY_GROUP.to_string()]);
        assert_eq!(entry.bytes("objectGUID"), [group.object_guid.as_slice()]);
        assert_eq!(
            group.guid,
            uuid::Uuid::from_bytes_le(group.object_guid).to_string()
        );
    }
    let cns: Vec<&str> = school.groups.iter().map(|g| g.cn.as_str()).collect();
    assert_eq!(
        cns,
        [
            "7A/Ma1",
            "8A/Ma1",
            "9A/Ma1",
            "10A/Ma1",
            "11A/Ma1",
            "13A/Ma1",
            "12A/Ma1",
            "12B/Ma1",
            "12B/En1",
            "10B/Fr1",
            "Year 12 Maths",
            "Maths Department",
            "Chess Club"
        ]
    );
    assert_eq!(school.group("12A/Ma1").sam_account_name, "12A-Ma1");
    assert_eq!(school.group("Chess Club").members, Vec::<String>::new());
    assert_eq!(
        school.group("10B/Fr1").members[0],
        "cn=zoë ó súilleabháin,ou=year 10,ou=students,dc=school,dc=example"
    );
    assert_eq!(
        zoe.member_of,
        [
            "CN=10A/Ma1,OU=Groups,DC=school,DC=example",
            school.group("10B/Fr1").dn.as_str()
        ]
    );
    let james = school.person("jsmith");
    assert_eq!(
        james.member_of,
        [
            school.group("12A/Ma1").dn.as_str(),
            school.group("12B/En1").dn.as_str()
        ]
    );
    let year12 = school.group("Year 12 Maths");
    assert_eq!(
        year12.nested,
        [
            school.group("12A/Ma1").dn.as_str(),
            school.group("12B/Ma1").dn.as_str()
        ]
    );
    assert_eq!(
        year12.member_of,
        [school.group("Maths Department").dn.as_str()]
    );

    // Nested groups expand to everyone, each once.
    let in_year = |year: &'static str| {
        school
            .students
            .iter()
            .filter(move |p| p.year.as_deref() == Some(year))
    };
    // The tutors: 12A/Ma1's (also 13A/Ma1's and the head of department) and 12B/Ma1's.
    let mut expected: Vec<&str> = in_year("12")
        .chain(in_year("13"))
        .chain([school.person("mhughes"), school.person("dcohen")])
        .map(|p| p.dn.as_str())
        .collect();
    expected.sort_unstable();
    let mut everyone: Vec<&str> = school
        .people_in("Maths Department")
        .iter()
        .map(|p| p.dn.as_str())
        .collect();
    everyone.sort_unstable();
    assert_eq!(everyone, expected);
    assert!(school.people_in("Chess Club").is_empty());
}

#[test]
fn the_change_helpers_keep_links_and_usns_as_active_directory_does() {
    let school = ad_school_ldif(20);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let start = slapd.highest_usn();
    let jane = school.person("jsmith2");
    let member = |group: &str| -> Vec<String> {
        let entry = slapd.read(&school.group(group).dn, &["member", "uSNChanged"]);
        entry
            .unwrap()
            .get("member")
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    // slapd spells the attribute types of DN values written by LDAP operations its own way
    // (`cn=…,ou=…`); slapadd keeps them as written.
    let has = |group: &str, dn: &str| {
        member(group)
            .iter()
            .any(|m| m.to_lowercase() == dn.to_lowercase())
    };
    let read = |dn: &str| slapd.read(dn, &[]).unwrap_or_else(|| panic!("no {dn}"));

    slapd.set_disabled(&jane.dn, true);
    assert_eq!(read(&jane.dn).get("userAccountControl"), ["514"]);
    assert_eq!(slapd.highest_usn(), start + 1);
    let changed =
        slapd.search_as_reader(&[&format!("(uSNChanged>={})", start + 1), "sAMAccountName"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(changed.entries.len(), 1);
    assert_eq!(changed.entries[0].get("sAMAccountName"), ["jsmith2"]);
    slapd.set_disabled(&jane.dn, false);
    assert_eq!(read(&jane.dn).get("userAccountControl"), ["512"]);

    // A new name renames the entry; the groups' member values follow it.
    let renamed = slapd.rename_person(&jane.dn, "Jane", "Smith-Brown");
    assert_eq!(
        renamed,
        "CN=Jane Smith-Brown,OU=Year 12,OU=Students,DC=school,DC=example"
    );
    assert!(slapd.read(&jane.dn, &[]).is_none());
    let entry = read(&renamed);
    assert_eq!(entry.get("cn"), ["Jane Smith-Brown"]);
    assert_eq!(entry.get("sn"), ["Smith-Brown"]);
    assert_eq!(entry.get("displayName"), ["Jane Smith-Brown"]);
    assert_eq!(entry.bytes("objectGUID"), [jane.object_guid.as_slice()]);
    assert_eq!(entry.get("uSNChanged"), [(start + 3).to_string()]);
    assert!(has("12B/Ma1", &renamed), "{:?}", member("12B/Ma1"));
    assert!(!has("12B/Ma1", &jane.dn));
    assert!(has("12B/En1", &renamed));

    // Promoted: moved to another OU.
    let moved = slapd.move_entry(&renamed, "CN=Jane Smith-Brown", Some(&ad_year_ou("13")));
    assert_eq!(
        moved,
        "CN=Jane Smith-Brown,OU=Year 13,OU=Students,DC=school,DC=example"
    );
    assert!(has("12B/Ma1", &moved));
    assert!(!has("12B/Ma1", &renamed));

    // Membership changes: the group's uSNChanged advances, the member's memberOf follows.
    let chess = &school.group("Chess Club").dn;
    let before = slapd.highest_usn();
    slapd.add_member(chess, &moved);
    assert!(has("Chess Club", &moved));
    assert_eq!(member("Chess Club").len(), 1);
    assert_eq!(read(&moved).get("memberOf").len(), 3);
    assert_eq!(read(chess).get("uSNChanged"), [(before + 1).to_string()]);
    slapd.remove_member(chess, &moved.to_uppercase());
    assert!(member("Chess Club").is_empty());
    assert_eq!(read(&moved).get("memberOf").len(), 2);

    // A nested group renamed: its parent's member and its members' memberOf follow.
    let year12 = &school.group("Year 12 Maths").dn;
    let renamed_group = slapd.move_entry(year12, "CN=Year 12 Mathematics", None);
    assert!(has("Maths Department", &renamed_group));
    assert!(!has("Maths Department", year12));
    assert_eq!(member("Maths Department").len(), 2);
    let memberships = read(&school.group("12A/Ma1").dn);
    assert_eq!(
        memberships.get("memberOf")[0].to_lowercase(),
        renamed_group.to_lowercase()
    );

    // Deleted: gone from its groups, whatever the case its DN was written in there.
    let zoe = school.person("zosuilleabhain");
    let french = member("10B/Fr1");
    assert_eq!(french[0], zoe.dn.to_lowercase());
    slapd.delete(&zoe.dn);
    assert!(slapd.read(&zoe.dn, &[]).is_none());
    assert_eq!(member("10B/Fr1"), french[1..]);
    assert!(!has("10A/Ma1", &zoe.dn));
    assert_eq!(
        member("10A/Ma1").len(),
        school.group("10A/Ma1").members.len() - 1
    );
}

#[test]
fn renaming_a_person_named_by_uid_keeps_the_dn() {
    let school = school_ldif(8);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let jane = &school.students[1];
    let dn = slapd.rename_person(&jane.dn, "Jane", "Smith-Brown");
    assert_eq!(dn, jane.dn);
    let entry = slapd.read(&dn, &["cn", "sn", "displayName"]).unwrap();
    assert_eq!(entry.get("cn"), ["Jane Smith-Brown"]);
    assert_eq!(entry.get("sn"), ["Smith-Brown"]);
    assert!(entry.get("displayName").is_empty());
    assert_eq!(slapd.highest_usn(), 0);
}

#[test]
fn a_tls_server_answers_starttls_and_ldaps_with_a_certificate_from_its_ca() {
    let Some((slapd, tls)) = Slapd::start_tls(&school_ldif(8).ldif) else {
        return;
    };
    assert!(tls.ldaps_url.starts_with("ldaps://127.0.0.1:"));
    assert_ne!(tls.ldaps_url.replace("ldaps", "ldap"), slapd.url);
    // libldap's own client (GnuTLS), trusting only the file it is given.
    let search = |url: &str, ca: &Path, starttls: bool| {
        let mut command = Command::new("ldapsearch");
        command
            .env("LDAPTLS_CACERT", ca)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-x", "-LLL", "-H", url])
            .args(["-D", &slapd.reader_dn, "-w", &slapd.reader_password])
            .args(["-b", STUDENTS, "(uid=jsmith)", "1.1"]);
        if starttls {
            command.arg("-ZZ");
        }
        Search::new(command.output().unwrap())
    };
    for (url, starttls) in [(&slapd.url, true), (&tls.ldaps_url, false)] {
        let found = search(url, &tls.ca_file, starttls);
        assert_eq!(found.code, 0, "{url}: {}\n{}", found.stderr, slapd.log());
        assert_eq!(found.entries.len(), 1, "{url}");
        let refused = search(url, &tls.other_ca_file, starttls);
        assert_ne!(refused.code, 0, "{url} with another CA");
    }
    assert!(slapd.log().contains("TLS established"), "{}", slapd.log());
    // Plain LDAP still works on the first URL.
    let plain = slapd.search_as_reader(&["(uid=jsmith)", "1.1"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
}
