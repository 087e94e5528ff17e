//! A school's course catalogue: the courses a teaching group can carry, and the modules a
//! course implies (picking "Mathematics Year 1 (AS)" adds its Statistics and Mechanics modules).
//!
//! Pure data; built from the configuration, which guarantees every implied code exists.
//! [`entitlements`] derives what a student has from the groups they are in.

use serde_json::{Map, Value, json};

pub mod entitlements;

/// One entry of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub code: String,
    pub title: String,
    /// Codes of the modules this course brings with it.
    pub implies: Vec<String>,
}

/// A course on a teaching group: chosen by the admin, or `implied` by a chosen one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub code: String,
    pub title: String,
    pub implied: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    courses: Vec<Course>,
}

impl Catalogue {
    /// Checks that codes are unique and that every implied code is in the catalogue.
    pub fn new(courses: Vec<Course>) -> Result<Catalogue, String> {
        for (i, course) in courses.iter().enumerate() {
            if course.code.trim().is_empty() || course.title.trim().is_empty() {
                return Err("a course needs a code and a title".into());
            }
            if courses[..i].iter().any(|c| c.code == course.code) {
                return Err(format!("course `{}` is declared twice", course.code));
            }
            for implied in &course.implies {
                if implied == &course.code {
                    return Err(format!("course `{}` implies itself", course.code));
                }
                if !courses.iter().any(|c| &c.code == implied) {
                    return Err(format!(
                        "course `{}` implies `{implied}`, which is not in the catalogue",
                        course.code
                    ));
                }
            }
        }
        Ok(Catalogue { courses })
    }

    pub fn is_empty(&self) -> bool {
        self.courses.is_empty()
    }

    pub fn courses(&self) -> &[Course] {
        &self.courses
    }

    /// The course a name picks: its code exactly, or its title in any case.
    pub fn find(&self, name: &str) -> Option<&Course> {
        let name = name.trim();
        self.courses.iter().find(|c| c.code == name).or_else(|| {
            self.courses
                .iter()
                .find(|c| c.title.to_lowercase() == name.to_lowercase())
        })
    }

    /// Whether choosing `chosen` brings `module` with it, directly or through the modules it
    /// implies.
    pub fn brings(&self, chosen: &str, module: &str) -> bool {
        let mut seen: Vec<&str> = Vec::new();
        let mut stack = vec![chosen];
        while let Some(code) = stack.pop() {
            let Some(course) = self.courses.iter().find(|c| c.code == code) else {
                continue;
            };
            for implied in &course.implies {
                if implied == module {
                    return true;
                }
                if !seen.contains(&implied.as_str()) {
                    seen.push(implied);
                    stack.push(implied);
                }
            }
        }
        false
    }

    /// The chosen courses, each followed by what it implies (transitively), without repeats.
    /// A course both chosen and implied counts as chosen. Unknown names are an error that lists
    /// them.
    pub fn expand<S: AsRef<str>>(&self, chosen: &[S]) -> Result<Vec<Assigned>, String> {
        let mut picked = Vec::new();
        let mut unknown = Vec::new();
        for name in chosen {
            match self.find(name.as_ref()) {
                Some(course) => picked.push(course),
                None => unknown.push(format!("`{}`", name.as_ref())),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "{} not in the school's course catalogue",
                if unknown.len() == 1 {
                    format!("course {} is", unknown[0])
                } else {
                    format!("courses {} are", unknown.join(", "))
                }
            ));
        }
        let mut out: Vec<Assigned> = Vec::new();
        for course in &picked {
            if let Some(existing) = out.iter_mut().find(|a| a.code == course.code) {
                existing.implied = false;
                continue;
            }
            out.push(Assigned {
                code: course.code.clone(),
                title: course.title.clone(),
                implied: false,
            });
            let mut stack: Vec<&str> = course.implies.iter().rev().map(String::as_str).collect();
            while let Some(code) = stack.pop() {
                if out.iter().any(|a| a.code == code) {
                    continue;
                }
                let Some(module) = self.courses.iter().find(|c| c.code == code) else {
                    continue;
                };
                out.push(Assigned {
                    code: module.code.clone(),
                    title: module.title.clone(),
                    implied: !picked.iter().any(|p| p.code == module.code),
                });
                stack.extend(module.implies.iter().rev().map(String::as_str));
            }
        }
        Ok(out)
    }
}

/// The school extension of a SCIM Group carries its courses.
pub use crate::scim::schema::SCHOOL_GROUP as GROUP_EXTENSION;

fn courses_of(document: &mut Value) -> Option<&mut Vec<Value>> {
    document
        .as_object_mut()?
        .iter_mut()
        .find(|(key, _)| key.eq_ignore_ascii_case(GROUP_EXTENSION))?
        .1
        .get_mut("courses")?
        .as_array_mut()
}

/// Removes the courses a client marked `implied`: rollcall derives those itself.
pub fn strip_implied(document: &mut Value) {
    if let Some(courses) = courses_of(document) {
        courses.retain(|course| course.get("implied") != Some(&Value::Bool(true)));
    }
}

/// Rewrites a checked group document's courses from the catalogue: titles filled in, implied
/// modules added and marked. A school without a catalogue takes the courses as sent.
pub fn expand_in(catalogue: &Catalogue, data: &mut Map<String, Value>) -> Result<(), String> {
    if catalogue.is_empty() {
        return Ok(());
    }
    let Some(Value::Object(extension)) = data.get_mut(GROUP_EXTENSION) else {
        return Ok(());
    };
    let Some(Value::Array(courses)) = extension.get_mut("courses") else {
        return Ok(());
    };
    let chosen: Vec<&str> = courses
        .iter()
        .filter_map(|course| course.get("value").and_then(Value::as_str))
        .collect();
    let expanded = catalogue
        .expand(&chosen)
        .map_err(|message| format!("courses: {message}"))?;
    *courses = expanded.iter().map(Assigned::to_scim).collect();
    Ok(())
}

impl Assigned {
    /// The SCIM form: `{"value", "display", "implied"}`.
    pub fn to_scim(&self) -> Value {
        json!({ "value": self.code, "display": self.title, "implied": self.implied })
    }

    /// Reads a course from a stored group document.
    pub fn from_scim(course: &Value) -> Option<Assigned> {
        Some(Assigned {
            code: course.get("value")?.as_str()?.to_owned(),
            title: course
                .get("display")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            implied: course.get("implied") == Some(&Value::Bool(true)),
        })
    }
}

/// The courses stored on a group document.
pub fn of_group(data: &Map<String, Value>) -> Vec<Assigned> {
    data.get(GROUP_EXTENSION)
        .and_then(|extension| extension.get("courses"))
        .and_then(Value::as_array)
        .map(|courses| courses.iter().filter_map(Assigned::from_scim).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn course(code: &str, title: &str, implies: &[&str]) -> Course {
        Course {
            code: code.into(),
            title: title.into(),
            implies: implies.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Mathematics with its modules (Mechanics bringing Vectors), and Physics, which brings
    /// Mechanics too; `entitlements`' tests read it as well.
    pub(super) fn maths() -> Catalogue {
        Catalogue::new(vec![
            course("MA1", "Mathematics Year 1 (AS)", &["MA1-S", "MA1-M"]),
            course("MA1-S", "Statistics Year 1", &[]),
            course("MA1-M", "Mechanics Year 1", &["MA1-V"]),
            course("MA1-V", "Vectors", &[]),
            course("PH1", "Physics Year 1", &["MA1-M"]),
        ])
        .unwrap()
    }

    #[test]
    fn a_course_brings_its_modules_transitively_and_once() {
        let got = maths().expand(&["mathematics year 1 (as)", "PH1"]).unwrap();
        let got: Vec<(&str, bool)> = got.iter().map(|a| (a.code.as_str(), a.implied)).collect();
        assert_eq!(
            got,
            [
                ("MA1", false),
                ("MA1-S", true),
                ("MA1-M", true),
                ("MA1-V", true),
                ("PH1", false)
            ]
        );
    }

    #[test]
    fn a_module_chosen_as_well_as_implied_counts_as_chosen() {
        let got = maths().expand(&["MA1", "MA1-S"]).unwrap();
        assert!(got.iter().all(|a| a.code != "MA1-S" || !a.implied));
        let got = maths().expand(&["MA1-S", "MA1"]).unwrap();
        assert_eq!(got.iter().filter(|a| a.code == "MA1-S").count(), 1);
        assert!(got.iter().all(|a| a.code != "MA1-S" || !a.implied));
    }

    #[test]
    fn unknown_courses_are_named() {
        let error = maths().expand(&["MA1", "Latin", "Greek"]).unwrap_err();
        assert_eq!(
            error,
            "courses `Latin`, `Greek` are not in the school's course catalogue"
        );
    }

    #[test]
    fn a_group_document_gets_titles_and_implied_modules() {
        let mut body = json!({
            GROUP_EXTENSION: { "courses": [
                { "value": "MA1" },
                { "value": "MA1-S", "display": "old", "implied": true },
            ]}
        });
        strip_implied(&mut body);
        let mut data = body.as_object().unwrap().clone();
        expand_in(&maths(), &mut data).unwrap();
        let got = of_group(&data);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].title, "Statistics Year 1");
        assert!(got[1].implied && !got[0].implied);
        let mut unknown = json!({ GROUP_EXTENSION: { "courses": [{ "value": "XX" }] } })
            .as_object()
            .unwrap()
            .clone();
        assert!(
            expand_in(&maths(), &mut unknown)
                .unwrap_err()
                .contains("`XX`")
        );
    }

    #[test]
    fn the_catalogue_is_checked() {
        assert!(Catalogue::new(vec![course("A", "A", &["B"])]).is_err());
        assert!(Catalogue::new(vec![course("A", "A", &["A"])]).is_err());
        assert!(Catalogue::new(vec![course("A", "A", &[]), course("A", "B", &[])]).is_err());
        // Cycles are harmless: expansion visits each course once.
        let cyclic =
            Catalogue::new(vec![course("A", "A", &["B"]), course("B", "B", &["A"])]).unwrap();
        assert_eq!(cyclic.expand(&["A"]).unwrap().len(), 2);
        assert!(cyclic.brings("A", "B") && cyclic.brings("B", "A"));
    }

    #[test]
    fn a_course_brings_its_modules_transitively() {
        assert!(maths().brings("MA1", "MA1-V"));
        assert!(maths().brings("PH1", "MA1-M"));
        assert!(!maths().brings("PH1", "MA1-S"));
        assert!(!maths().brings("MA1-S", "MA1"));
        assert!(!maths().brings("XX", "MA1"));
    }
}
