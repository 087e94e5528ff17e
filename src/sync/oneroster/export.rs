//! The files of a OneRoster 1.1 CSV export (a folder, or a zip file of it), each checked
//! against the CSV binding's tables: the manifest, the header, required values and each
//! value's type. Structure only: how the files refer to each other is [`super`]'s concern.
//!
//! Every problem is collected, with the file, the line as a spreadsheet numbers it (the header
//! is line 1) and the column; nothing stops at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// The largest file an export may hold (a zip's entries are read no further).
const MAX_FILE: u64 = 1 << 30;

/// The files rollcall reads, in the order they are read and reported (`manifest.csv` first).
pub const FILES: [&str; 5] = ["orgs", "users", "courses", "classes", "enrollments"];

/// One thing wrong with an export, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `users.csv`; the export itself (its path) for a problem with the folder or zip file.
    pub file: String,
    /// As a spreadsheet numbers it: the header is line 1.
    pub line: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn file(file: &str, message: String) -> Problem {
        Problem {
            file: file.to_owned(),
            line: None,
            column: None,
            message,
        }
    }

    pub fn at(file: &str, line: u64, column: Option<&str>, message: String) -> Problem {
        Problem {
            file: file.to_owned(),
            line: Some(line),
            column: column.map(str::to_owned),
            message,
        }
    }

    /// Where it sorts: the manifest, then the files in [`FILES`] order, by line.
    fn rank(&self) -> (usize, u64) {
        let file = match self.file.strip_suffix(".csv") {
            Some("manifest") => 1,
            Some(name) => FILES
                .iter()
                .position(|f| *f == name)
                .map_or(FILES.len() + 2, |i| i + 2),
            None => 0,
        };
        // A problem with the whole file after those of its lines.
        (file, self.line.unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Problems in the order a person reads the export: the manifest first, then each file by line.
pub fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(Problem::rank);
}

/// How the manifest says a file is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every record.
    Bulk,
    /// Only the records changed since the last export (`status` says which go).
    Delta,
    /// Not in the export.
    Absent,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Delta => "delta",
            Mode::Absent => "absent",
        }
    }
}

/// What `manifest.csv` says.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// `file.<name>` → its mode and the manifest's line saying so.
    pub files: BTreeMap<String, (Mode, u64)>,
}

impl Manifest {
    pub fn mode(&self, name: &str) -> Mode {
        self.files.get(name).map_or(Mode::Absent, |(mode, _)| *mode)
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    /// A sourcedId, or a reference to one.
    Id,
    /// A list of sourcedIds (comma-separated in one field).
    Ids,
    /// A list of values.
    List,
    /// `active` or `tobedeleted`; needed in a delta file.
    Status,
    /// A date and time (ISO 8601); needed in a delta file.
    Modified,
    /// `true` or `false`.
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// One of these tokens.
    Enum(&'static [&'static str]),
    /// One of these tokens, or an extension `ext:…`.
    Extensible(&'static [&'static str]),
    /// A list of `{type:identifier}`.
    UserIds,
}

/// A column of a file, as the CSV binding's table defines it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
    pub kind: Type,
}

const fn column(name: &'static str, required: bool, kind: Type) -> Column {
    Column {
        name,
        required,
        kind,
    }
}

const REQUIRED: bool = true;
const OPTIONAL: bool = false;

const ORGS: &[Column] = &[
    column("sourcedId", REQUIRED, Type::Id),
    column("status", OPTIONAL, Type::Status),
    column("dateLastModified", OPTIONAL, Type::Modified),
    column("name", REQUIRED, Type::Text),
    column(
        "type",
        REQUIRED,
        Type::Extensible(&[
            "department",
            "school",
            "district",
            "local",
            "state",
            "national",
        ]),
    ),
    column("identifier", OPTIONAL, Type::Text),
    column("parentSourcedId", OPTIONAL, Type::Id),
];

const USERS: &[Column] = &[
    column("sourcedId", REQUIRED, Type::Id),
    column("status", OPTIONAL, Type::Status),
    column("dateLastModified", OPTIONAL, Type::Modified),
    column("enabledUser", REQUIRED, Type::Bool),
    column("orgSourcedIds", REQUIRED, Type::Ids),
    column(
        "role",
        REQUIRED,
        Type::Enum(&[
            "administrator",
            "aide",
            "guardian",
            "parent",
            "proctor",
            "relative",
            "student",
            "teacher",
        ]),
    ),
    column("username", REQUIRED, Type::Text),
    column("userIds", OPTIONAL, Type::UserIds),
    column("givenName", REQUIRED, Type::Text),
    column("familyName", REQUIRED, Type::Text),
    column("middleName", OPTIONAL, Type::Text),
    column("identifier", OPTIONAL, Type::Text),
    column("email", OPTIONAL, Type::Text),
    column("sms", OPTIONAL, Type::Text),
    column("phone", OPTIONAL, Type::Text),
    column("agentSourcedIds", OPTIONAL, Type::Ids),
    column("grades", OPTIONAL, Type::List),
    column("password", OPTIONAL, Type::Text),
];

const COURSES: &[Column] = &[
    column("sourcedId", REQUIRED, Type::Id),
    column("status", OPTIONAL, Type::Status),
    column("dateLastModified", OPTIONAL, Type::Modified),
    column("schoolYearSourcedId", OPTIONAL, Type::Id),
    column("title", REQUIRED, Type::Text),
    column("courseCode", OPTIONAL, Type::Text),
    column("grades", OPTIONAL, Type::List),
    column("orgSourcedId", REQUIRED, Type::Id),
    column("subjects", OPTIONAL, Type::List),
    column("subjectCodes", OPTIONAL, Type::List),
];

const CLASSES: &[Column] = &[
    column("sourcedId", REQUIRED, Type::Id),
    column("status", OPTIONAL, Type::Status),
    column("dateLastModified", OPTIONAL, Type::Modified),
    column("title", REQUIRED, Type::Text),
    column("grades", OPTIONAL, Type::List),
    column("courseSourcedId", REQUIRED, Type::Id),
    column("classCode", OPTIONAL, Type::Text),
    column(
        "classType",
        REQUIRED,
        Type::Extensible(&["homeroom", "scheduled"]),
    ),
    column("location", OPTIONAL, Type::Text),
    column("schoolSourcedId", REQUIRED, Type::Id),
    column("termSourcedIds", REQUIRED, Type::Ids),
    column("subjects", OPTIONAL, Type::List),
    column("subjectCodes", OPTIONAL, Type::List),
    column("periods", OPTIONAL, Type::List),
];

const ENROLLMENTS: &[Column] = &[
    column("sourcedId", REQUIRED, Type::Id),
    column("status", OPTIONAL, Type::Status),
    column("dateLastModified", OPTIONAL, Type::Modified),
    column("classSourcedId", REQUIRED, Type::Id),
    column("schoolSourcedId", REQUIRED, Type::Id),
    column("userSourcedId", REQUIRED, Type::Id),
    column(
        "role",
        REQUIRED,
        Type::Enum(&["administrator", "proctor", "student", "teacher"]),
    ),
    column("primary", OPTIONAL, Type::Bool),
    column("beginDate", OPTIONAL, Type::Date),
    column("endDate", OPTIONAL, Type::Date),
];

/// The columns of one of [`FILES`].
pub fn columns(name: &str) -> &'static [Column] {
    match name {
        "orgs" => ORGS,
        "users" => USERS,
        "courses" => COURSES,
        "classes" => CLASSES,
        "enrollments" => ENROLLMENTS,
        _ => &[],
    }
}

/// One data row.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    pub fields: Vec<String>,
}

/// One file, checked.
#[derive(Debug, Clone)]
pub struct Table {
    /// `users`
    pub name: &'static str,
    pub mode: Mode,
    /// The header, as written.
    pub header: Vec<String>,
    /// Where each of the binding's columns is (those the file has).
    positions: HashMap<&'static str, usize>,
    /// Rows with the header's number of fields (others are reported and left out).
    pub rows: Vec<Row>,
    /// The sourcedIds of the rows left out, so that what refers to them is not reported too.
    pub broken: HashSet<String>,
}

impl Table {
    /// `users.csv`
    pub fn file(&self) -> String {
        format!("{}.csv", self.name)
    }

    /// A field, trimmed of nothing ("" when the file has no such column).
    pub fn get<'a>(&self, row: &'a Row, column: &str) -> &'a str {
        self.positions
            .get(column)
            .and_then(|&i| row.fields.get(i))
            .map_or("", String::as_str)
    }

    /// A list field's values: split on commas, trimmed, empty ones left out.
    pub fn list<'a>(&self, row: &'a Row, column: &str) -> Vec<&'a str> {
        split(self.get(row, column))
    }

    /// Whether a field is `tobedeleted`.
    pub fn deleted(&self, row: &Row) -> bool {
        self.get(row, "status") == "tobedeleted"
    }

    /// The file's columns: each header name with its type (`None` for a column the binding
    /// does not define, such as `metadata.*`).
    pub fn columns(&self) -> impl Iterator<Item = (usize, &str, Option<Type>)> {
        let spec = columns(self.name);
        self.header.iter().enumerate().map(move |(i, name)| {
            let kind = spec.iter().find(|c| c.name == name).map(|c| c.kind);
            (i, name.as_str(), kind)
        })
    }
}

/// Values of a list field.
pub fn split(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// A whole export, each file checked.
#[derive(Debug, Clone)]
pub struct Export {
    pub manifest: Manifest,
    /// The files read (those the manifest does not declare absent).
    pub tables: HashMap<&'static str, Table>,
}

impl Export {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub fn mode(&self, name: &str) -> Mode {
        self.manifest.mode(name)
    }
}

/// Where the files are: a folder, or a zip file (its entries at the top, or in one folder).
enum Container {
    Folder(PathBuf),
    Zip {
        archive: Box<zip::ZipArchive<std::fs::File>>,
        prefix: String,
    },
}

/// The files of an export.
struct Files {
    container: Container,
    /// The names it holds (`users.csv`).
    names: BTreeSet<String>,
}

impl Files {
    fn open(path: &Path) -> Result<Files, Problem> {
        let shown = path.display().to_string();
        let metadata = std::fs::metadata(path)
            .map_err(|e| Problem::file(&shown, format!("cannot be read: {e}")))?;
        if metadata.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| Problem::file(&shown, format!("cannot be read: {e}")))?;
            let mut names = BTreeSet::new();
            for entry in entries {
                let entry =
                    entry.map_err(|e| Problem::file(&shown, format!("cannot be read: {e}")))?;
                if entry.path().is_file()
                    && let Some(name) = entry.file_name().to_str()
                {
                    names.insert(name.to_owned());
                }
            }
            return Ok(Files {
                container: Container::Folder(path.to_owned()),
                names,
            });
        }
        let file = std::fs::File::open(path)
            .map_err(|e| Problem::file(&shown, format!("cannot be read: {e}")))?;
        let archive = zip::ZipArchive::new(file).map_err(|e| {
            Problem::file(
                &shown,
                format!(
                    "is neither a folder nor a zip file ({e}): give the folder of the export's \
                     CSV files or a zip file of them"
                ),
            )
        })?;
        let all: Vec<String> = archive
            .file_names()
            .filter_map(Result::ok)
            .map(|name| name.into_owned())
            .collect();
        // The files at the top, or (a zipped folder) in the one folder holding manifest.csv.
        let prefix = if all.iter().any(|n| n == "manifest.csv") {
            String::new()
        } else {
            let folders: Vec<&str> = all
                .iter()
                .filter_map(|n| n.strip_suffix("manifest.csv"))
                .filter(|p| p.ends_with('/') && p.matches('/').count() == 1)
                .collect();
            match folders.as_slice() {
                [one] => (*one).to_owned(),
                _ => String::new(),
            }
        };
        let names = all
            .iter()
            .filter_map(|n| n.strip_prefix(prefix.as_str()))
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .map(str::to_owned)
            .collect();
        Ok(Files {
            container: Container::Zip {
                archive: Box::new(archive),
                prefix,
            },
            names,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>, Problem> {
        let mut bytes = Vec::new();
        let too_big = || Problem::file(name, format!("is larger than {} MiB", MAX_FILE >> 20));
        match &mut self.container {
            Container::Folder(folder) => {
                let file = std::fs::File::open(folder.join(name))
                    .map_err(|e| Problem::file(name, format!("cannot be read: {e}")))?;
                file.take(MAX_FILE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Problem::file(name, format!("cannot be read: {e}")))?;
            }
            Container::Zip { archive, prefix } => {
                let entry = archive.by_name(&format!("{prefix}{name}")).map_err(|e| {
                    Problem::file(name, format!("cannot be read from the zip file: {e}"))
                })?;
                entry
                    .take(MAX_FILE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| {
                        Problem::file(name, format!("cannot be read from the zip file: {e}"))
                    })?;
            }
        }
        if bytes.len() as u64 > MAX_FILE {
            return Err(too_big());
        }
        Ok(bytes)
    }
}

/// Reads and checks an export: every file, with every problem found in them (an `Err` when the
/// export cannot be read at all).
pub fn read(path: &Path) -> Result<(Export, Vec<Problem>), Vec<Problem>> {
    let mut files = Files::open(path).map_err(|p| vec![p])?;
    if !files.has("manifest.csv") {
        return Err(vec![Problem::file(
            "manifest.csv",
            "is missing: a OneRoster export holds manifest.csv, which says the version and \
             which files are bulk, delta or absent"
                .into(),
        )]);
    }
    let mut problems = Vec::new();
    let manifest = match files.read("manifest.csv") {
        Ok(bytes) => manifest(&bytes, &mut problems),
        Err(problem) => return Err(vec![problem]),
    };
    // The manifest and the files must agree.
    for (name, (mode, line)) in &manifest.files {
        let file = format!("{name}.csv");
        match (mode, files.has(&file)) {
            (Mode::Bulk | Mode::Delta, false) => problems.push(Problem::file(
                &file,
                format!(
                    "is missing, but manifest.csv declares it {} (line {line})",
                    mode.name()
                ),
            )),
            (Mode::Absent, true) => problems.push(Problem::file(
                &file,
                format!("is in the export, but manifest.csv declares it absent (line {line})"),
            )),
            _ => {}
        }
    }
    let mut tables = HashMap::new();
    for name in FILES {
        let mode = manifest.mode(name);
        let file = format!("{name}.csv");
        if mode == Mode::Absent || !files.has(&file) {
            continue;
        }
        match files.read(&file) {
            Ok(bytes) => {
                tables.insert(name, table(name, mode, &bytes, &mut problems));
            }
            Err(problem) => problems.push(problem),
        }
    }
    Ok((Export { manifest, tables }, problems))
}

/// A file's records with their lines; each field is UTF-8 text without line breaks.
fn records(file: &str, bytes: &[u8], problems: &mut Vec<Problem>) -> Vec<(u64, Vec<String>)> {
    // A byte order mark is allowed (and ignored).
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Line ends as `\n` alone: the csv crate counts a CRLF's line only once it reads the next
    // record, which would put every line number after the first one line early.
    let bytes = unix_lines(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut out = Vec::new();
    let mut header: Vec<String> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                problems.push(Problem::at(file, line, None, format!("is not CSV: {e}")));
                break;
            }
        }
        let line = record.position().map_or(line, csv::Position::line);
        let mut fields = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let column = header.get(i).map(String::as_str);
            match std::str::from_utf8(field) {
                Ok(text) if text.contains('\n') => {
                    problems.push(Problem::at(
                        file,
                        line,
                        column,
                        "holds a line break, which the OneRoster CSV format does not allow in a \
                         field"
                            .into(),
                    ));
                    fields.push(text.replace('\n', " "));
                }
                Ok(text) => fields.push(text.to_owned()),
                Err(_) => {
                    problems.push(Problem::at(
                        file,
                        line,
                        column,
                        "is not UTF-8 text (save the file as UTF-8)".into(),
                    ));
                    fields.push(String::from_utf8_lossy(field).into_owned());
                }
            }
        }
        if out.is_empty() {
            header = fields.clone();
        }
        out.push((line, fields));
    }
    out
}

/// CRLF and CR line ends as LF.
fn unix_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied().peekable();
    while let Some(byte) = iter.next() {
        if byte == b'\r' {
            if iter.peek() == Some(&b'\n') {
                iter.next();
            }
            out.push(b'\n');
        } else {
            out.push(byte);
        }
    }
    out
}

/// `manifest.csv`: `propertyName,value` rows.
fn manifest(bytes: &[u8], problems: &mut Vec<Problem>) -> Manifest {
    const FILE: &str = "manifest.csv";
    let mut out = Manifest::default();
    let mut records = records(FILE, bytes, problems).into_iter();
    match records.next() {
        Some((_, header)) if header == ["propertyName", "value"] => {}
        Some((line, header)) => {
            problems.push(Problem::at(
                FILE,
                line,
                None,
                format!(
                    "the header is `{}`; it must be `propertyName,value`",
                    header.join(",")
                ),
            ));
            return out;
        }
        None => {
            problems.push(Problem::file(FILE, "is empty".into()));
            return out;
        }
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut versions = (false, false);
    for (line, fields) in records {
        let [name, value] = fields.as_slice() else {
            problems.push(Problem::at(
                FILE,
                line,
                None,
                format!("has {} fields; the header has 2", fields.len()),
            ));
            continue;
        };
        if let Some(first) = seen.insert(name.clone(), line) {
            problems.push(Problem::at(
                FILE,
                line,
                Some("propertyName"),
                format!("`{name}` is on line {first} already"),
            ));
            continue;
        }
        let bad = |expected: &str| {
            Problem::at(
                FILE,
                line,
                Some("value"),
                format!("`{name}` is `{value}`; {expected}"),
            )
        };
        match name.as_str() {
            "manifest.version" => {
                versions.0 = true;
                if value != "1.0" {
                    problems.push(bad("rollcall reads manifest version 1.0"));
                }
            }
            "oneroster.version" => {
                versions.1 = true;
                if value != "1.1" {
                    problems.push(bad("rollcall reads OneRoster 1.1 exports"));
                }
            }
            _ => {
                if let Some(file) = name.strip_prefix("file.") {
                    let mode = match value.as_str() {
                        "bulk" => Mode::Bulk,
                        "delta" => Mode::Delta,
                        "absent" => Mode::Absent,
                        _ => {
                            problems.push(bad("use `bulk`, `delta` or `absent`"));
                            continue;
                        }
                    };
                    out.files.insert(file.to_owned(), (mode, line));
                }
                // `source.systemName`, `source.systemCode` and others: not needed.
            }
        }
    }
    for (present, property, value) in [
        (versions.0, "manifest.version", "1.0"),
        (versions.1, "oneroster.version", "1.1"),
    ] {
        if !present {
            problems.push(Problem::file(
                FILE,
                format!("has no `{property}` property (it should be {value})"),
            ));
        }
    }
    for name in FILES {
        if !seen.contains_key(&format!("file.{name}")) {
            problems.push(Problem::file(
                FILE,
                format!(
                    "has no `file.{name}` property: it must say whether {name}.csv is bulk, \
                     delta or absent"
                ),
            ));
        }
    }
    out
}

/// One file of [`FILES`]: its header against the binding's columns, then every row.
fn table(name: &'static str, mode: Mode, bytes: &[u8], problems: &mut Vec<Problem>) -> Table {
    let file = format!("{name}.csv");
    let spec = columns(name);
    let mut records = records(&file, bytes, problems).into_iter();
    let mut out = Table {
        name,
        mode,
        header: Vec::new(),
        positions: HashMap::new(),
        rows: Vec::new(),
        broken: HashSet::new(),
    };
    let Some((header_line, header)) = records.next() else {
        problems.push(Problem::file(
            &file,
            "is empty: it needs at least its header row".into(),
        ));
        return out;
    };
    let delta = mode == Mode::Delta;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, column) in header.iter().enumerate() {
        if let Some(first) = seen.insert(column.as_str(), i) {
            problems.push(Problem::at(
                &file,
                header_line,
                Some(column),
                format!("is the name of column {} already", first + 1),
            ));
            continue;
        }
        match spec.iter().find(|c| c.name == column) {
            Some(known) => {
                out.positions.insert(known.name, i);
            }
            None => {
                // A column of the binding misspelt is a mistake; `metadata.*` and other extra
                // columns are allowed (and carried).
                let near = spec
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(column.trim()));
                if let Some(near) = near {
                    problems.push(Problem::at(
                        &file,
                        header_line,
                        Some(column),
                        format!(
                            "should be spelt `{}` (OneRoster's column names are case-sensitive)",
                            near.name
                        ),
                    ));
                }
            }
        }
    }
    for column in spec {
        let needed =
            column.required || (delta && matches!(column.kind, Type::Status | Type::Modified));
        if needed && !out.positions.contains_key(column.name) {
            let why = if column.required {
                "OneRoster requires it"
            } else {
                "a delta file needs it"
            };
            problems.push(Problem::at(
                &file,
                header_line,
                Some(column.name),
                format!("the column is missing; {why}"),
            ));
        }
    }
    out.header = header;
    let width = out.header.len();
    for (line, fields) in records {
        if fields.len() != width {
            problems.push(Problem::at(
                &file,
                line,
                None,
                format!("has {} fields; the header has {width}", fields.len()),
            ));
            if let Some(id) = out.positions.get("sourcedId").and_then(|&i| fields.get(i)) {
                out.broken.insert(id.clone());
            }
            continue;
        }
        for column in spec {
            let Some(&i) = out.positions.get(column.name) else {
                continue;
            };
            let value = fields[i].as_str();
            if let Err(message) = check(column, value, delta) {
                problems.push(Problem::at(&file, line, Some(column.name), message));
            }
        }
        let row = Row { line, fields };
        let (begin, end) = (out.get(&row, "beginDate"), out.get(&row, "endDate"));
        if !begin.is_empty() && !end.is_empty() && date(end).ok() < date(begin).ok() {
            problems.push(Problem::at(
                &file,
                line,
                Some("endDate"),
                format!("{end} is before the beginDate, {begin}"),
            ));
        }
        out.rows.push(row);
    }
    out
}

/// Checks one value against its column.
pub fn check(column: &Column, value: &str, delta: bool) -> Result<(), String> {
    if value.is_empty() {
        if column.required {
            return Err("is empty; OneRoster requires a value".into());
        }
        if delta && matches!(column.kind, Type::Status | Type::Modified) {
            return Err("is empty; a delta file needs it on every row".into());
        }
        return Ok(());
    }
    match column.kind {
        Type::Text | Type::Id | Type::Ids | Type::List => Ok(()),
        Type::Status => match value {
            "active" | "tobedeleted" => Ok(()),
            _ => Err(format!(
                "`{value}` is not a status: use `active` or `tobedeleted`"
            )),
        },
        Type::Modified => date_time(value).map(|_| ()).map_err(|()| {
            format!("`{value}` is not a date and time (ISO 8601, such as 2024-09-01T08:30:00.000Z)")
        }),
        Type::Bool => boolean(value)
            .map(|_| ())
            .ok_or_else(|| format!("`{value}` is not `true` or `false`")),
        Type::Date => date(value)
            .map(|_| ())
            .map_err(|()| format!("`{value}` is not a date (YYYY-MM-DD, such as 2024-09-01)")),
        Type::Enum(tokens) => {
            if tokens.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "`{value}` is not one of {} (values are case-sensitive)",
                    listed(tokens)
                ))
            }
        }
        Type::Extensible(tokens) => {
            if tokens.contains(&value) || value.strip_prefix("ext:").is_some_and(|e| !e.is_empty())
            {
                Ok(())
            } else {
                Err(format!(
                    "`{value}` is not one of {} or an extension `ext:…` (values are \
                     case-sensitive)",
                    listed(tokens)
                ))
            }
        }
        Type::UserIds => {
            for id in split(value) {
                let inner = id.strip_prefix('{').and_then(|i| i.strip_suffix('}'));
                let well_formed = inner
                    .and_then(|i| i.split_once(':'))
                    .is_some_and(|(kind, id)| !kind.trim().is_empty() && !id.trim().is_empty());
                if !well_formed {
                    return Err(format!(
                        "`{id}` is not a user id: write `{{type:identifier}}`, such as `{{LDAP:ann}}`"
                    ));
                }
            }
            Ok(())
        }
    }
}

fn listed(tokens: &[&str]) -> String {
    let quoted: Vec<String> = tokens.iter().map(|t| format!("`{t}`")).collect();
    quoted.join(", ")
}

/// `true` or `false`, in any case (a spreadsheet saves `TRUE`).
pub fn boolean(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `YYYY-MM-DD`.
pub fn date(value: &str) -> Result<time::Date, ()> {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .filter(|part| part.iter().all(u8::is_ascii_digit))
            .and_then(|part| std::str::from_utf8(part).ok())
            .and_then(|part| part.parse::<u16>().ok())
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(());
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(());
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or(())?;
    let day = u8::try_from(day).map_err(|_| ())?;
    time::Date::from_calendar_date(i32::from(year), month, day).map_err(|_| ())
}

/// An ISO 8601 date and time: with an offset (`Z`, `+01:00`), without one (taken as UTC), or
/// a date alone.
fn date_time(value: &str) -> Result<(), ()> {
    if date(value).is_ok()
        || time::OffsetDateTime::parse(value, &Rfc3339).is_ok()
        || time::PrimitiveDateTime::parse(
            value,
            format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            ),
        )
        .is_ok()
    {
        Ok(())
    } else {
        Err(())
    }
}
