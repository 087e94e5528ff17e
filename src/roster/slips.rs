//! Credential slips: each student's username and first password, shown once, as CSV for a
//! spreadsheet or as a printable HTML page to cut into slips and hand out.

use std::fmt;

use zeroize::Zeroizing;

/// One student's credential slip. The password is the first password, shown once.
#[derive(Clone)]
pub struct Slip {
    /// The school's name.
    pub school: String,
    /// Teaching group(s), e.g. "12A/Ma1"; may be empty.
    pub group: String,
    /// The student's first name.
    pub first_name: String,
    /// The student's surname.
    pub surname: String,
    /// The username to log in with.
    pub user_name: String,
    /// The first password; the student chooses a new one on first log-in.
    pub password: Zeroizing<String>,
    /// Where to log in, e.g. `https://learn.example.org`; may be empty.
    pub login_url: String,
}

impl fmt::Debug for Slip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slip")
            .field("school", &self.school)
            .field("group", &self.group)
            .field("first_name", &self.first_name)
            .field("surname", &self.surname)
            .field("user_name", &self.user_name)
            .field("password", &format_args!("<redacted>"))
            .field("login_url", &self.login_url)
            .finish()
    }
}

/// The slips as CSV with a header row: school, group, first name, surname, username, password,
/// login url. RFC 4180 quoting, CRLF line ends, UTF-8 with a byte-order mark so that Excel reads
/// it as UTF-8.
///
/// A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so
/// that a spreadsheet shows it rather than running it as a formula (CSV injection). The username
/// and password columns are exempt, because a slip must show them exactly. They come from
/// rollcall's own generators, which only produce `[A-Za-z0-9.!#%+=?@*_-]`: with no parentheses
/// or quotes, the most a spreadsheet can make of one is arithmetic, never a function call that
/// fetches or runs anything.
pub fn csv(slips: &[Slip]) -> String {
    // Writing into memory cannot fail: the csv crate errs only on IO, which a Vec never does,
    // and on records of unequal length, which these are not.
    write_csv(slips).unwrap_or_default()
}

fn write_csv(slips: &[Slip]) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer("\u{feff}".as_bytes().to_vec());
    out.write_record([
        "school",
        "group",
        "first name",
        "surname",
        "username",
        "password",
        "login url",
    ])?;
    for slip in slips {
        out.write_record([
            &*guard_formula(&slip.school),
            &guard_formula(&slip.group),
            &guard_formula(&slip.first_name),
            &guard_formula(&slip.surname),
            &slip.user_name,
            &slip.password,
            &guard_formula(&slip.login_url),
        ])?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

/// `cell`, with a leading `'` if a spreadsheet would otherwise take it for a formula.
fn guard_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The slips as a complete, standalone HTML page to print (no external resources, no
/// JavaScript): one card per student with school, group, name, username, password and where to
/// log in, several to an A4 sheet in two columns with dashed lines to cut along. On screen, a
/// header (hidden in print) says how many slips there are and how to print them.
pub fn html(school: &str, slips: &[Slip]) -> String {
    let mut page = String::with_capacity(2048 + 640 * slips.len());
    page.push_str(HEAD_START);
    page.push_str("<title>Credential slips — ");
    push_escaped(&mut page, school);
    page.push_str("</title>\n");
    page.push_str(STYLE);
    page.push_str("</head>\n<body>\n<header>\n<p><strong>");
    page.push_str(&slips.len().to_string());
    page.push_str(if slips.len() == 1 {
        " credential slip"
    } else {
        " credential slips"
    });
    page.push_str("</strong> for ");
    push_escaped(&mut page, school);
    page.push_str(
        ". Print this page with your browser; cut along the dashed lines. \
         Each password is shown only once: keep the printout safe and close this page \
         when done.</p>\n</header>\n<main>\n",
    );
    for slip in slips {
        push_slip(&mut page, slip);
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

fn push_slip(page: &mut String, slip: &Slip) {
    page.push_str("<article class=\"slip\">\n<p class=\"head\"><span>");
    push_escaped(page, &slip.school);
    page.push_str("</span>");
    if !slip.group.is_empty() {
        page.push_str("<span class=\"group\">");
        push_escaped(page, &slip.group);
        page.push_str("</span>");
    }
    page.push_str("</p>\n");
    page.push_str("<h2>");
    push_escaped(page, &slip.first_name);
    page.push(' ');
    push_escaped(page, &slip.surname);
    page.push_str("</h2>\n<dl>\n<dt>Username</dt><dd class=\"secret\">");
    push_escaped(page, &slip.user_name);
    page.push_str("</dd>\n<dt>Password</dt><dd class=\"secret\">");
    push_escaped(page, &slip.password);
    page.push_str("</dd>\n</dl>\n");
    if !slip.login_url.is_empty() {
        page.push_str("<p>Log in at <strong>");
        push_escaped(page, &slip.login_url);
        page.push_str("</strong></p>\n");
    }
    page.push_str(
        "<p class=\"note\">You will be asked to choose a new password when you first log in.</p>\n\
         </article>\n",
    );
}

/// The Content-Security-Policy source that allows [`html`]'s one inline style, and nothing else:
/// `sha256-…` of the style element's text.
pub fn style_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    let text = STYLE
        .trim_end()
        .trim_start_matches("<style>")
        .trim_end_matches("</style>");
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn push_escaped(page: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => page.push_str("&amp;"),
            '<' => page.push_str("&lt;"),
            '>' => page.push_str("&gt;"),
            '"' => page.push_str("&quot;"),
            '\'' => page.push_str("&#39;"),
            c => page.push(c),
        }
    }
}

const HEAD_START: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n";

/// Two columns of slips; the grid's dashed lines are where to cut. The monospace stack favours
/// fonts whose 0 is slashed or dotted and whose l and 1 differ; letter spacing keeps every
/// character apart.
const STYLE: &str = "<style>
@page { size: A4; margin: 10mm }
* { box-sizing: border-box }
body { margin: 0; color: #111; background: #fff;
  font: 11pt/1.4 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif }
header { padding: 0.75rem 1rem; margin-bottom: 1rem; background: #f3f4f6; border-bottom: 1px solid #d1d5db }
header p { margin: 0; max-width: 60rem }
main { display: grid; grid-template-columns: 1fr 1fr; max-width: 190mm; margin: 0 auto }
.slip { break-inside: avoid; page-break-inside: avoid; padding: 4mm 6mm;
  border-right: 1px dashed #9ca3af; border-bottom: 1px dashed #9ca3af }
.slip:nth-child(odd) { border-left: 1px dashed #9ca3af }
.slip:nth-child(-n+2) { border-top: 1px dashed #9ca3af }
.slip p { margin: 0 0 1.5mm }
.head { display: flex; justify-content: space-between; gap: 3mm; font-size: 9pt; color: #4b5563 }
.head span:first-child { text-transform: uppercase; letter-spacing: 0.06em }
.group { white-space: nowrap }
h2 { margin: 1mm 0 2mm; font-size: 14pt; font-weight: 600 }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1.5mm 4mm; align-items: baseline;
  margin: 0 0 2mm; padding: 2mm 4mm; border: 1px solid #111; border-radius: 2mm }
dt { font-size: 9pt; color: #4b5563 }
dd { margin: 0 }
.secret { font: 600 15pt/1.2 ui-monospace, \"Cascadia Mono\", \"DejaVu Sans Mono\", Menlo, Consolas,
  \"Liberation Mono\", monospace; letter-spacing: 0.12em;
  font-variant-ligatures: none; overflow-wrap: anywhere }
.note { font-size: 9pt; color: #4b5563 }
@media print { header { display: none } main { max-width: none } }
</style>
";

#[cfg(test)]
mod tests {
    use super::*;

    fn slip(first_name: &str, user_name: &str, password: &str) -> Slip {
        Slip {
            school: "Hill & Dale School".to_owned(),
            group: "12A/Ma1".to_owned(),
            first_name: first_name.to_owned(),
            surname: "O'Neill".to_owned(),
            user_name: user_name.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            login_url: "https://learn.example.org".to_owned(),
        }
    }

    fn read_csv(text: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn csv_round_trips_with_bom_and_crlf() {
        let slips = [
            slip("Ann, \"Annie\"\nMarie", "ann.oneill", "x7#Kp2m!"),
            slip("Bo", "bo.oneill", "Qz9.rT4w"),
        ];
        let text = csv(&slips);
        assert!(text.starts_with("\u{feff}school,group,first name,surname,username,password,"));
        assert!(text.contains("login url\r\n"));
        assert!(text.ends_with("\r\n"));
        let rows = read_csv(&text);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            [
                "Hill & Dale School",
                "12A/Ma1",
                "Ann, \"Annie\"\nMarie",
                "O'Neill",
                "ann.oneill",
                "x7#Kp2m!",
                "https://learn.example.org"
            ]
        );
        assert_eq!(rows[2][4..6], ["bo.oneill", "Qz9.rT4w"]);
    }

    #[test]
    fn csv_guards_formulas_except_in_username_and_password() {
        let mut evil = slip("=HYPERLINK(\"http://evil\",\"x\")", "-bob", "=1+1");
        evil.surname = "@SUM(A1)".to_owned();
        evil.group = "+12A".to_owned();
        evil.school = "\tTab".to_owned();
        evil.login_url = "-x".to_owned();
        let rows = read_csv(&csv(&[evil]));
        assert_eq!(
            rows[1],
            [
                "'\tTab",
                "'+12A",
                "'=HYPERLINK(\"http://evil\",\"x\")",
                "'@SUM(A1)",
                "-bob",
                "=1+1",
                "'-x"
            ]
        );
    }

    #[test]
    fn csv_of_no_slips_is_the_header() {
        assert_eq!(read_csv(&csv(&[])).len(), 1);
    }

    #[test]
    fn html_escapes_and_shows_every_credential() {
        let slips = [
            slip("<script>alert(1)</script>", "ann.oneill", "x7#Kp2m!"),
            slip("Bo", "bo.oneill", "a<b&c\"d'e"),
        ];
        let page = html("Hill & Dale <School>", &slips);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<title>Credential slips — Hill &amp; Dale &lt;School&gt;</title>"));
        assert!(page.contains("O&#39;Neill"));
        for user_name in ["ann.oneill", "bo.oneill"] {
            assert!(page.contains(&format!(">{user_name}</dd>")));
        }
        assert!(page.contains(">x7#Kp2m!</dd>"));
        assert!(page.contains(">a&lt;b&amp;c&quot;d&#39;e</dd>"));
        assert_eq!(page.matches("<article").count(), 2);
        assert_eq!(page.matches("Log in at").count(), 2);
        assert!(page.contains("<strong>2 credential slips</strong>"));
    }

    #[test]
    fn html_is_a_standalone_printable_page() {
        let page = html("Hill School", &[slip("Ann", "ann", "pw")]);
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("size: A4"));
        assert!(page.contains("@media print"));
        assert!(page.contains("break-inside: avoid"));
        assert!(page.contains("<strong>1 credential slip</strong>"));
        assert!(page.contains("You will be asked to choose a new password when you first log in."));
        for external in ["<script", "<link", "src=", "url(", "@import", "http://"] {
            assert!(!page.contains(external), "{external}");
        }
    }

    #[test]
    fn html_omits_empty_log_in_and_group() {
        let mut bare = slip("Ann", "ann", "pw");
        bare.login_url.clear();
        bare.group.clear();
        let page = html("Hill School", &[bare]);
        assert!(!page.contains("Log in at"));
        assert!(!page.contains("class=\"group\""));
    }

    #[test]
    fn debug_hides_the_password() {
        let debug = format!(
            "{:?} {:#?}",
            slip("Ann", "ann", "x7#Kp2m!"),
            [slip("B", "b", "x7#Kp2m!")]
        );
        assert!(!debug.contains("x7#Kp2m!"));
        assert!(debug.contains("ann") && debug.contains("<redacted>"));
    }
}
