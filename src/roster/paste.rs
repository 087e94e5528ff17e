//! Class lists pasted from a spreadsheet, turned into rows of student fields.
//!
//! Admins copy a class list out of Excel or Google Sheets and paste it. That arrives as
//! tab-separated text (what both copy), or as comma- or semicolon-separated CSV (Excel in
//! continental locales writes `;`), with or without a header row, and with the quirks those tools
//! add: a byte-order mark, CRLF, LF or lone CR line endings, quoted cells, trailing empty columns,
//! blank lines and non-breaking spaces. This module finds the separator and the header, and yields
//! trimmed [`Row`]s; checking each field (is the email valid, is a name empty) is the caller's job.

use std::borrow::Cow;
use std::fmt;

use csv::{ReaderBuilder, StringRecord};

/// The most student rows one paste may hold.
const MAX_ROWS: usize = 20_000;

/// The columns a class list can have, in the order assumed when there is no header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The student's first (given) name.
    FirstName,
    /// The student's surname (family name).
    Surname,
    /// The student's email address.
    Email,
    /// The student's username (login).
    UserName,
    /// The student's year group (or grade).
    YearGroup,
    /// The school's number for the student (UPN, admission number, MIS id...).
    StudentNumber,
}

impl Column {
    /// Every column, in the order assumed when there is no header row.
    pub const ALL: [Column; 6] = [
        Column::FirstName,
        Column::Surname,
        Column::Email,
        Column::UserName,
        Column::YearGroup,
        Column::StudentNumber,
    ];

    /// The name used in messages: "first name", "surname", "email", "username", "year group",
    /// "student number".
    pub fn label(self) -> &'static str {
        match self {
            Column::FirstName => "first name",
            Column::Surname => "surname",
            Column::Email => "email",
            Column::UserName => "username",
            Column::YearGroup => "year group",
            Column::StudentNumber => "student number",
        }
    }

    /// Recognises a heading, case-insensitively and ignoring whitespace, `_`, `-`, `.`, `:` and
    /// `*`: "First name", "Forename", "Last name", "E-mail", "Login", "Year", "UPN", "Adm. No"...
    pub fn from_heading(heading: &str) -> Option<Column> {
        let key: String = heading
            .chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '.' | ':' | '*'))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "firstname" | "firstnames" | "forename" | "forenames" | "givenname" | "givennames"
            | "first" | "legalfirstname" | "legalforename" | "preferredfirstname"
            | "preferredforename" => Column::FirstName,
            "surname" | "lastname" | "familyname" | "last" | "legalsurname" | "legallastname"
            | "preferredsurname" | "preferredlastname" => Column::Surname,
            "email" | "emailaddress" | "mail" | "studentemail" | "studentemailaddress" => {
                Column::Email
            }
            "username" | "login" | "loginname" | "userid" | "account" | "accountname" => {
                Column::UserName
            }
            "year" | "yeargroup" | "yr" | "ncyear" | "yearlevel" | "grade" | "gradelevel" => {
                Column::YearGroup
            }
            "studentnumber" | "studentno" | "studentid" | "upn" | "admissionnumber"
            | "admissionno" | "adno" | "admno" | "pupilnumber" | "pupilno" | "pupilid"
            | "misid" | "candidatenumber" | "candidateno" => Column::StudentNumber,
            _ => return None,
        })
    }
}

/// One student row as the admin pasted it. Cells are trimmed; a missing cell is "".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    /// The 1-based line of the pasted text where this row starts: the row number the admin sees
    /// in the spreadsheet (the header, when present, is row 1). Blank lines count; a quoted cell
    /// holding line breaks pushes the rows after it down by as many lines.
    pub line: u64,
    /// The first name cell.
    pub first_name: String,
    /// The surname cell.
    pub surname: String,
    /// The email cell.
    pub email: String,
    /// The username cell.
    pub user_name: String,
    /// The year group cell.
    pub year_group: String,
    /// The student number cell.
    pub student_number: String,
}

impl Row {
    /// The cell of one column.
    pub fn get(&self, column: Column) -> &str {
        match column {
            Column::FirstName => &self.first_name,
            Column::Surname => &self.surname,
            Column::Email => &self.email,
            Column::UserName => &self.user_name,
            Column::YearGroup => &self.year_group,
            Column::StudentNumber => &self.student_number,
        }
    }

    fn get_mut(&mut self, column: Column) -> &mut String {
        match column {
            Column::FirstName => &mut self.first_name,
            Column::Surname => &mut self.surname,
            Column::Email => &mut self.email,
            Column::UserName => &mut self.user_name,
            Column::YearGroup => &mut self.year_group,
            Column::StudentNumber => &mut self.student_number,
        }
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paste {
    /// The student rows, in paste order, without the header, blank lines and all-empty rows.
    pub rows: Vec<Row>,
    /// The separator detected: `b'\t'`, `b','` or `b';'`.
    pub separator: u8,
    /// True when the first non-blank line was recognised as headings.
    pub header: bool,
    /// The 1-based column numbers and headings of header columns that were not recognised and
    /// were ignored (e.g. "Tutor group"); empty without a header.
    pub ignored: Vec<(usize, String)>,
}

/// A problem with the paste as a whole or with one row's shape. Field-level checks (is the email
/// valid, is the first name empty) are not this module's job: the caller validates rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasteError {
    /// The 1-based line of the row at fault, when the problem is in one row.
    pub line: Option<u64>,
    /// What is wrong, as a sentence for the admin.
    pub message: String,
}

impl PasteError {
    fn at(line: u64, message: impl Into<String>) -> PasteError {
        PasteError {
            line: Some(line),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> PasteError {
        PasteError {
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for PasteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "row {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PasteError {}

/// Text from the bytes of a class list as spreadsheets save it: UTF-8 (with or without a BOM),
/// UTF-16 with a BOM (Excel's "Unicode Text"), or else Windows-1252 (Excel's "CSV (Comma
/// delimited)" on Windows), which is the one reading of bytes that are not UTF-8 admins
/// produce. Returns the text and the encoding's name.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_with_bom_removal(bytes);
        return (text.into_owned(), encoding.name());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), encoding_rs::UTF_8.name()),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (text.into_owned(), encoding_rs::WINDOWS_1252.name())
        }
    }
}

/// Parses pasted text into student rows.
///
/// The separator is a tab if the first non-blank line has one outside quotes, else whichever of
/// `;` and `,` it holds more of (`,` on a tie), else a tab. Cells follow the CSV rules for
/// quotes with every separator. The first non-empty row is a header when every cell in it is a
/// recognised heading, or when it holds both the first name and the surname headings; otherwise
/// the columns are taken in the order of [`Column::ALL`].
///
/// # Errors
///
/// When the paste holds no rows, only a header, more than 20,000 rows, a quoted cell that is
/// never closed, a header naming a column twice or lacking the first name or surname, or (without
/// a header) a row with a value beyond the sixth column.
pub fn parse(text: &str) -> Result<Paste, PasteError> {
    let text = normalize(text);
    let separator = detect_separator(&text);
    check_quotes(&text, separator)?;

    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator)
        .from_reader(text.as_bytes());
    let mut record = StringRecord::new();
    let mut paste = Paste {
        rows: Vec::new(),
        separator,
        header: false,
        ignored: Vec::new(),
    };
    // The column of each cell position, known once the first non-empty row has been read.
    let mut layout: Option<Vec<Option<Column>>> = None;
    while reader.read_record(&mut record).map_err(read_error)? {
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let line = line_of(&record, &text);
        let columns = match &layout {
            Some(columns) => columns,
            None => match read_header(&record, line)? {
                Some(header) => {
                    paste.header = true;
                    paste.ignored = header.ignored;
                    layout = Some(header.columns);
                    continue;
                }
                None => layout.insert(Column::ALL.map(Some).to_vec()),
            },
        };
        if paste.rows.len() == MAX_ROWS {
            return Err(PasteError::whole(format!(
                "the paste has more than {MAX_ROWS} rows; split it"
            )));
        }
        let mut row = Row {
            line,
            ..Row::default()
        };
        for (index, cell) in record.iter().enumerate() {
            match columns.get(index) {
                Some(Some(column)) => *row.get_mut(*column) = clean(cell),
                Some(None) => {}
                None if paste.header || cell.trim().is_empty() => {}
                None => {
                    return Err(PasteError::at(
                        line,
                        format!(
                            "column {} holds `{}`, but a class list without a header has at most \
                             {} columns: {}",
                            index + 1,
                            clean(cell),
                            Column::ALL.len(),
                            Column::ALL.map(Column::label).join(", ")
                        ),
                    ));
                }
            }
        }
        paste.rows.push(row);
    }

    match (&layout, paste.rows.is_empty()) {
        (None, _) => Err(PasteError::whole("the paste holds no rows")),
        (Some(_), true) => Err(PasteError::whole(
            "the paste holds a header row but no students beneath it",
        )),
        (Some(_), false) => Ok(paste),
    }
}

/// Strips a byte-order mark and turns CRLF and lone CR line endings into LF, so that the csv
/// reader's line count is the admin's line count.
fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A cell as the caller sees it: non-breaking spaces are spaces, and the ends are trimmed.
fn clean(cell: &str) -> String {
    cell.trim().replace('\u{a0}', " ")
}

/// Where a scan is within a record, by the csv reader's rules: a quote opens a quoted cell only
/// at the start of a cell, and a doubled quote inside one stands for a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted cell: it closes the cell unless another quote follows.
    QuoteInQuoted,
}

impl Scan {
    fn next(self, c: char, is_separator: bool) -> Scan {
        match (self, c) {
            (Scan::Quoted, '"') => Scan::QuoteInQuoted,
            (Scan::Quoted, _) => Scan::Quoted,
            (Scan::FieldStart | Scan::QuoteInQuoted, '"') => Scan::Quoted,
            (_, '\n') => Scan::FieldStart,
            _ if is_separator => Scan::FieldStart,
            _ => Scan::Unquoted,
        }
    }
}

/// The separator of the first non-blank line: a tab if it has one outside quotes, else the more
/// frequent of `;` and `,` (`,` on a tie), else a tab. Any of the three starts a cell for quoting.
fn detect_separator(text: &str) -> u8 {
    let (mut tabs, mut commas, mut semicolons) = (0, 0, 0);
    let mut blank = true;
    let mut scan = Scan::FieldStart;
    for c in text.chars() {
        if scan != Scan::Quoted {
            match c {
                '\t' => tabs += 1,
                ',' => commas += 1,
                ';' => semicolons += 1,
                '\n' if blank => (tabs, commas, semicolons) = (0, 0, 0),
                '\n' => break,
                _ => {}
            }
        }
        blank &= c.is_whitespace();
        scan = scan.next(c, matches!(c, '\t' | ',' | ';'));
    }
    if tabs > 0 {
        b'\t'
    } else if semicolons > commas {
        b';'
    } else if commas > 0 {
        b','
    } else {
        b'\t'
    }
}

/// Fails on a quoted cell that is never closed, which the csv reader would otherwise accept by
/// swallowing the rest of the paste into that one cell.
fn check_quotes(text: &str, separator: u8) -> Result<(), PasteError> {
    let separator = char::from(separator);
    let (mut line, mut opened) = (1, 1);
    let mut scan = Scan::FieldStart;
    for c in text.chars() {
        let next = scan.next(c, c == separator);
        if scan == Scan::FieldStart && next == Scan::Quoted {
            opened = line;
        }
        if c == '\n' {
            line += 1;
        }
        scan = next;
    }
    if scan == Scan::Quoted {
        Err(PasteError::at(
            opened,
            "a cell here opens a quote (\") that is never closed, so the rest of the paste would \
             end up in that one cell; close the quote or remove it",
        ))
    } else {
        Ok(())
    }
}

/// The line where a record starts. The csv reader positions a record where its read began, that
/// is before any blank lines it skipped, so those are counted here.
fn line_of(record: &StringRecord, text: &str) -> u64 {
    record.position().map_or(1, |position| {
        let rest = usize::try_from(position.byte())
            .ok()
            .and_then(|start| text.as_bytes().get(start..))
            .unwrap_or_default();
        let blank_lines = rest.iter().take_while(|&&b| b == b'\n').count();
        position.line() + blank_lines as u64
    })
}

fn read_error(error: csv::Error) -> PasteError {
    PasteError {
        line: error.position().map(csv::Position::line),
        message: format!("the paste could not be read: {error}"),
    }
}

/// A recognised header row.
struct Header {
    /// The column of each cell position; `None` for ignored cells.
    columns: Vec<Option<Column>>,
    ignored: Vec<(usize, String)>,
}

/// Reads the first non-empty row as a header, if it is one, and checks it.
fn read_header(record: &StringRecord, line: u64) -> Result<Option<Header>, PasteError> {
    let cells: Vec<String> = record.iter().map(clean).collect();
    let columns: Vec<Option<Column>> = cells.iter().map(|c| Column::from_heading(c)).collect();
    let has = |column| columns.contains(&Some(column));
    let all_headings = cells
        .iter()
        .zip(&columns)
        .all(|(cell, column)| cell.is_empty() || column.is_some());
    let is_header = all_headings || (has(Column::FirstName) && has(Column::Surname));
    if !is_header {
        return Ok(None);
    }

    for (index, column) in columns.iter().enumerate() {
        if let Some(column) = column
            && let Some(first) = columns[..index].iter().position(|c| c == &Some(*column))
        {
            return Err(PasteError::at(
                line,
                format!(
                    "columns {} and {} are both the {}",
                    first + 1,
                    index + 1,
                    column.label()
                ),
            ));
        }
    }
    for (column, names) in [
        (Column::FirstName, "First name or Forename"),
        (Column::Surname, "Surname or Last name"),
    ] {
        if !has(column) {
            return Err(PasteError::at(
                line,
                format!(
                    "the header row has no {} column; name it {names}",
                    column.label()
                ),
            ));
        }
    }

    let ignored = cells
        .into_iter()
        .zip(&columns)
        .enumerate()
        .filter(|(_, (cell, column))| column.is_none() && !cell.is_empty())
        .map(|(index, (cell, _))| (index + 1, cell))
        .collect();
    Ok(Some(Header { columns, ignored }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(line: u64, cells: [&str; 6]) -> Row {
        let [
            first_name,
            surname,
            email,
            user_name,
            year_group,
            student_number,
        ] = cells.map(str::to_owned);
        Row {
            line,
            first_name,
            surname,
            email,
            user_name,
            year_group,
            student_number,
        }
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(paste) => panic!("parsed {paste:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn excel_tsv_with_crlf_and_trailing_tabs() {
        let text = "First Name\tLast Name\tEmail\tYear\t\t\r\n\
                    Ada\tLovelace\tada@school.org\t7\t\t\r\n\
                    Alan\tTuring\tturing@school.org\t8\t\t\r\n";
        let paste = parse(text).unwrap();
        assert_eq!(paste.separator, b'\t');
        assert!(paste.header);
        assert!(paste.ignored.is_empty());
        assert_eq!(
            paste.rows,
            [
                row(2, ["Ada", "Lovelace", "ada@school.org", "", "7", ""]),
                row(3, ["Alan", "Turing", "turing@school.org", "", "8", ""]),
            ]
        );
    }

    #[test]
    fn google_sheets_tsv_with_lf_and_no_final_newline() {
        let text = "Ada\tLovelace\tada@school.org\talovelace\tY7\t1001\n\
                    Alan\tTuring\t\taturing\tY8\t1002";
        let paste = parse(text).unwrap();
        assert_eq!(paste.separator, b'\t');
        assert!(!paste.header);
        assert_eq!(
            paste.rows,
            [
                row(
                    1,
                    [
                        "Ada",
                        "Lovelace",
                        "ada@school.org",
                        "alovelace",
                        "Y7",
                        "1001"
                    ]
                ),
                row(2, ["Alan", "Turing", "", "aturing", "Y8", "1002"]),
            ]
        );
    }

    #[test]
    fn excel_csv_with_bom_semicolons_and_a_quoted_separator() {
        let text = "\u{feff}Forename;Surname;E-mail;Adm. No\r\n\
                    \"Mary; Jane\";Smith;mj@school.org;42\r\n\
                    Tom;\"O\"\"Neil\";;43\r\n";
        let paste = parse(text).unwrap();
        assert_eq!(paste.separator, b';');
        assert!(paste.header);
        assert_eq!(
            paste.rows,
            [
                row(2, ["Mary; Jane", "Smith", "mj@school.org", "", "", "42"]),
                row(3, ["Tom", "O\"Neil", "", "", "", "43"]),
            ]
        );
    }

    #[test]
    fn quoted_cell_with_a_newline_keeps_later_line_numbers() {
        let text = "First name,Surname,Email\n\
                    \"Ada\r\nAugusta\",Lovelace,ada@school.org\n\
                    Alan,Turing,turing@school.org\n";
        let paste = parse(text).unwrap();
        assert_eq!(paste.separator, b',');
        assert_eq!(
            paste.rows,
            [
                row(
                    2,
                    ["Ada\nAugusta", "Lovelace", "ada@school.org", "", "", ""]
                ),
                row(4, ["Alan", "Turing", "turing@school.org", "", "", ""]),
            ]
        );
    }

    #[test]
    fn reordered_header_with_an_ignored_column() {
        let text = "Surname,First name,Tutor group,Email\n\
                    Lovelace,Ada,7A,ada@school.org\n";
        let paste = parse(text).unwrap();
        assert!(paste.header);
        assert_eq!(paste.ignored, [(3, "Tutor group".to_owned())]);
        assert_eq!(
            paste.rows,
            [row(2, ["Ada", "Lovelace", "ada@school.org", "", "", ""])]
        );
    }

    #[test]
    fn headings_with_decoration_are_recognised() {
        let paste = parse("*First Name:\tSURNAME*\tStudent_No.\nAda\tLovelace\t9\n").unwrap();
        assert!(paste.header);
        assert_eq!(paste.rows, [row(2, ["Ada", "Lovelace", "", "", "", "9"])]);
    }

    #[test]
    fn partial_header_without_both_names_is_data() {
        let paste = parse("Name,Surname,Email\nAda,Lovelace,ada@school.org\n").unwrap();
        assert!(!paste.header);
        assert_eq!(paste.rows.len(), 2);
        assert_eq!(
            paste.rows[0],
            row(1, ["Name", "Surname", "Email", "", "", ""])
        );
    }

    #[test]
    fn no_header() {
        let paste = parse("Ada,Lovelace,ada@school.org\nAlan,Turing\n").unwrap();
        assert!(!paste.header);
        assert!(paste.ignored.is_empty());
        assert_eq!(
            paste.rows,
            [
                row(1, ["Ada", "Lovelace", "ada@school.org", "", "", ""]),
                row(2, ["Alan", "Turing", "", "", "", ""]),
            ]
        );
    }

    #[test]
    fn blank_lines_and_empty_rows_are_skipped_without_shifting_lines() {
        let text =
            "\n\nFirst name\tSurname\t\n\n\nAda\tLovelace\t\n\t\t\n \t \u{a0}\t\nAlan\tTuring";
        let paste = parse(text).unwrap();
        assert_eq!(paste.separator, b'\t');
        assert_eq!(
            paste.rows,
            [
                row(6, ["Ada", "Lovelace", "", "", "", ""]),
                row(9, ["Alan", "Turing", "", "", "", ""]),
            ]
        );
        let lone_cr = parse(";;\rAda;Lovelace\r\r;;\rAlan;Turing\r").unwrap();
        assert_eq!(lone_cr.separator, b';');
        let lines: Vec<u64> = lone_cr.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 5]);
    }

    #[test]
    fn non_breaking_spaces_are_spaces_and_trimmed() {
        let paste = parse("\u{a0}Mary\u{a0}Jane \t  Smith\u{a0}\u{a0}\n").unwrap();
        assert_eq!(paste.rows, [row(1, ["Mary Jane", "Smith", "", "", "", ""])]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_cell_is_text() {
        let paste = parse("O\"Brien,Liam\nMia,\"Ng\"x\n").unwrap();
        assert_eq!(paste.rows[0].first_name, "O\"Brien");
        assert_eq!(paste.rows[1].surname, "Ngx");
    }

    #[test]
    fn separator_detection() {
        let separator = |text| parse(text).unwrap().separator;
        assert_eq!(separator("Ada\nAlan\n"), b'\t');
        assert_eq!(separator("a;b,c\n"), b',');
        assert_eq!(separator("a;b;c,d\n"), b';');
        assert_eq!(separator("\"x,y,z\";b\n"), b';');
        assert_eq!(separator("a,b;c\td\n"), b'\t');
        assert_eq!(separator("\n \n\"a\nb;c\",d\ne,f\n"), b',');
    }

    #[test]
    fn headings() {
        for (heading, column) in [
            ("First name", Column::FirstName),
            ("forenames", Column::FirstName),
            ("Preferred first name", Column::FirstName),
            ("LAST_NAME", Column::Surname),
            ("Legal surname", Column::Surname),
            ("e-mail address", Column::Email),
            ("User ID", Column::UserName),
            ("account", Column::UserName),
            ("NC Year", Column::YearGroup),
            ("Grade", Column::YearGroup),
            ("Adm No", Column::StudentNumber),
            ("UPN", Column::StudentNumber),
            ("Candidate number", Column::StudentNumber),
        ] {
            assert_eq!(Column::from_heading(heading), Some(column), "{heading}");
        }
        assert_eq!(Column::from_heading("Tutor group"), None);
        assert_eq!(Column::from_heading(""), None);
        for column in Column::ALL {
            assert_eq!(Column::from_heading(column.label()), Some(column));
        }
    }

    #[test]
    fn row_get_reads_each_column() {
        let row = row(1, ["a", "b", "c", "d", "e", "f"]);
        let cells = Column::ALL.map(|column| row.get(column));
        assert_eq!(cells, ["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn empty_pastes_are_refused() {
        assert_eq!(error(""), "the paste holds no rows");
        assert_eq!(
            error("\u{feff}\r\n \r\n\t\t\n;;\n"),
            "the paste holds no rows"
        );
        assert_eq!(
            error("First name,Surname\n,\n"),
            "the paste holds a header row but no students beneath it"
        );
    }

    #[test]
    fn header_errors() {
        let e = parse("First name,Surname,Email,Last name\nAda,Lovelace,a@b.org,L\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert_eq!(e.message, "columns 2 and 4 are both the surname");
        assert_eq!(
            error("\nFirst name\tEmail\nAda\ta@b.org\n"),
            "row 2: the header row has no surname column; name it Surname or Last name"
        );
        assert_eq!(
            error("Surname;Year\nLovelace;7\n"),
            "row 1: the header row has no first name column; name it First name or Forename"
        );
    }

    #[test]
    fn too_many_columns_without_a_header() {
        let text = "Ada,Lovelace,,,,,\n\n\nAlan,Turing,a@b.org,at,8,12,  x ,\n";
        assert_eq!(
            error(text),
            "row 4: column 7 holds `x`, but a class list without a header has at most 6 columns: \
             first name, surname, email, username, year group, student number"
        );
    }

    #[test]
    fn unterminated_quote() {
        let e = parse("Ada,Lovelace\n\"Alan,Turing\nGrace,Hopper\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("never closed"), "{e}");
        let e = parse("Ada\tLovelace\nAlan\t\"Tu\"\"ring\"\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(parse("Ada\t\"Love\"\"lace\"\"\"\n").is_ok());
    }

    #[test]
    fn too_many_rows() {
        let text = "Ada\tLovelace\n".repeat(MAX_ROWS);
        assert_eq!(parse(&text).unwrap().rows.len(), MAX_ROWS);
        assert_eq!(
            error(&format!("First name\tSurname\n{text}\nAlan\tTuring\n")),
            "the paste has more than 20000 rows; split it"
        );
    }

    #[test]
    fn error_display() {
        let e = PasteError::at(7, "bad");
        assert_eq!(e.to_string(), "row 7: bad");
        assert_eq!(PasteError::whole("bad").to_string(), "bad");
    }

    /// A cell without separators, quotes or line breaks, possibly padded with spaces.
    fn cell() -> impl Strategy<Value = String> {
        "[A-Za-z0-9@.' \u{a0}é-]{0,8}"
    }

    fn expected(cell: &str) -> String {
        cell.replace('\u{a0}', " ").trim().to_owned()
    }

    /// A table's columns (`None` for an ignored one) and its rows.
    fn table() -> impl Strategy<Value = (bool, Vec<Option<Column>>, Vec<Vec<String>>)> {
        let plain = (1..=Column::ALL.len()).prop_map(|width| {
            (
                false,
                Column::ALL[..width].iter().copied().map(Some).collect(),
            )
        });
        let headed = Just(
            Column::ALL
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>(),
        )
        .prop_shuffle()
        .prop_map(|columns| (true, columns));
        prop_oneof![plain, headed].prop_flat_map(|(header, columns): (bool, Vec<_>)| {
            let rows = prop::collection::vec(prop::collection::vec(cell(), columns.len()), 0..8);
            (Just(header), Just(columns), rows)
        })
    }

    proptest! {
        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_structure(text in "[a \t,;\"\r\n\u{a0}\u{feff}é]{0,60}") {
            if let Ok(paste) = parse(&text) {
                prop_assert!(!paste.rows.is_empty());
                for row in &paste.rows {
                    prop_assert!(row.line >= 1);
                    prop_assert_eq!(row.first_name.trim(), row.first_name.as_str());
                }
            }
        }

        #[test]
        fn quote_check_agrees_with_the_csv_reader(
            text in "[a \t,;\"\n]{0,40}",
            separator in prop_oneof![Just(b'\t'), Just(b','), Just(b';')],
        ) {
            // A closed paste ends its last record at a line break; an open quote swallows it.
            let probe = format!("{text}\nPROBE");
            let mut reader = ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(separator)
                .from_reader(probe.as_bytes());
            let last = reader.records().filter_map(Result::ok).last();
            let closed = last.is_some_and(|record| record == vec!["PROBE"]);
            prop_assert_eq!(check_quotes(&text, separator).is_ok(), closed);
        }

        #[test]
        fn round_trips(
            (header, columns, rows) in table(),
            separator in prop_oneof![Just('\t'), Just(','), Just(';')],
            newline in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            bom in any::<bool>(),
            final_newline in any::<bool>(),
        ) {
            let filled = |cells: &&Vec<String>| cells.iter().any(|c| !expected(c).is_empty());
            if !header && let Some(cells) = rows.iter().find(filled) {
                prop_assume!(cells.iter().all(|c| Column::from_heading(c).is_none()));
            }
            let mut lines: Vec<String> = Vec::new();
            if header {
                let headings = columns.iter().map(|c| c.map_or("Tutor group", Column::label));
                lines.push(headings.collect::<Vec<_>>().join(&separator.to_string()));
            }
            lines.extend(rows.iter().map(|cells| cells.join(&separator.to_string())));
            let mut text = if bom { "\u{feff}".to_owned() } else { String::new() };
            text += &lines.join(newline);
            if final_newline {
                text += newline;
            }

            let want: Vec<Row> = rows
                .iter()
                .enumerate()
                .filter(|(_, cells)| filled(cells))
                .map(|(index, cells)| {
                    let line = (index + 1 + usize::from(header)) as u64;
                    let mut row = Row { line, ..Row::default() };
                    for (column, cell) in columns.iter().zip(cells) {
                        if let Some(column) = column {
                            *row.get_mut(*column) = expected(cell);
                        }
                    }
                    row
                })
                .collect();
            let parsed = parse(&text);
            if want.is_empty() {
                prop_assert!(parsed.is_err());
                return Ok(());
            }
            let paste = parsed.map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
            let want_separator = if columns.len() == 1 { b'\t' } else { separator as u8 };
            prop_assert_eq!(paste.separator, want_separator);
            prop_assert_eq!(paste.header, header);
            let ignored: Vec<(usize, String)> = columns
                .iter()
                .position(Option::is_none)
                .map(|index| (index + 1, "Tutor group".to_owned()))
                .into_iter()
                .collect();
            prop_assert_eq!(paste.ignored, ignored);
            prop_assert_eq!(paste.rows, want);
        }
    }

    #[test]
    fn saved_files_decode_from_every_encoding_excel_writes() {
        let text = "First name\tSurname\r\nZoë\tÓ Súilleabháin\r\n";
        // UTF-8, with and without a BOM.
        assert_eq!(decode(text.as_bytes()), (text.to_owned(), "UTF-8"));
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
        assert_eq!(decode(&with_bom).0, text);
        // Excel's "Unicode Text": UTF-16LE with a BOM.
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16), (text.to_owned(), "UTF-16LE"));
        // Excel's "CSV (Comma delimited)" on Windows: Windows-1252.
        let cp1252: Vec<u8> = text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        assert_eq!(decode(&cp1252), (text.to_owned(), "windows-1252"));
        let parsed = parse(&decode(&utf16).0).unwrap();
        assert_eq!(parsed.rows[0].surname, "Ó Súilleabháin");
    }
}
