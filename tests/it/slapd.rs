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
//! [`school_ldif`] generates a deterministic school: students, tutors and teaching groups,
//! with the awkward cases a real directory has (see its documentation).
//!
//! `scripts/test.sh` installs slapd and ldap-utils. Without them a plain `cargo test` prints a
//! loud `skipped:` line and [`Slapd::start`] returns `None`; with `CI=true` it panics instead.
//!
//! Debian's slapd 2.5 builds only the `config`, `ldif` and `monitor` backends in: `mdb` and the
//! overlays are modules in `/usr/lib/ldap` (`modulepath` + `moduleload back_mdb`).

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

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

fn skip(message: &str) {
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
    pub attributes: Vec<(String, String)>,
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
}

/// Parses LDIF content records (what `ldapsearch -LLL` prints): folded lines, `#` comments,
/// `name:: base64` values.
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
            String::from_utf8(bytes).unwrap()
        } else {
            rest.strip_prefix(' ').unwrap_or(rest).to_owned()
        };
        match current.as_mut() {
            None => {
                assert_eq!(name, "dn", "an entry starts with its dn: {line}");
                current = Some(Entry {
                    dn: value,
                    attributes: Vec::new(),
                });
            }
            Some(entry) => entry.attributes.push((name.to_owned(), value)),
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
    let proc = PathBuf::from(format!("/proc/{pid}"));
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
