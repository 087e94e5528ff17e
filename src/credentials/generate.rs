//! Password policies: generating first passwords and checking the ones people choose.

use std::fmt;
use std::sync::LazyLock;

use rand::TryRng;
use rand::rngs::SysRng;
use zeroize::Zeroizing;

/// The longest password a person may choose.
const MAX_CHOSEN: usize = 256;

/// Printable ASCII punctuation without quotes, backslash or backtick.
const SYMBOLS: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";
/// Symbols that are easy to tell apart and to type; used with `no_lookalikes`.
const PLAIN_SYMBOLS: &str = "!#%+=?@*-";
/// Characters easily mistaken for one another, left out with `no_lookalikes`.
const LOOKALIKES: &str = "l1Ii|O0o";

/// The shortest and longest words in `words.txt`.
const WORD_LENGTHS: std::ops::RangeInclusive<usize> = 3..=7;

/// The shipped word list, one word a line.
static WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("words.txt")
        .lines()
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .collect()
});

/// Character classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CharClass {
    /// Lower-case letters.
    Lower,
    /// Capital letters.
    Upper,
    /// The digits 0 to 9.
    Digit,
    /// Anything that is not a letter, a digit or white space.
    Symbol,
}

impl CharClass {
    /// The class named `lower`, `upper`, `digit` or `symbol`.
    pub fn parse(text: &str) -> Option<CharClass> {
        match text {
            "lower" => Some(CharClass::Lower),
            "upper" => Some(CharClass::Upper),
            "digit" => Some(CharClass::Digit),
            "symbol" => Some(CharClass::Symbol),
            _ => None,
        }
    }

    /// The name [`CharClass::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            CharClass::Lower => "lower",
            CharClass::Upper => "upper",
            CharClass::Digit => "digit",
            CharClass::Symbol => "symbol",
        }
    }

    /// Whether `c` belongs to the class. Letters count in any script (`é` is lower case);
    /// digits are ASCII.
    pub fn contains(self, c: char) -> bool {
        match self {
            CharClass::Lower => c.is_lowercase(),
            CharClass::Upper => c.is_uppercase(),
            CharClass::Digit => c.is_ascii_digit(),
            CharClass::Symbol => !c.is_alphanumeric() && !c.is_whitespace(),
        }
    }

    /// The characters generated passwords draw from this class.
    fn alphabet(self, no_lookalikes: bool) -> impl Iterator<Item = char> {
        let all = match self {
            CharClass::Lower => "abcdefghijklmnopqrstuvwxyz",
            CharClass::Upper => "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            CharClass::Digit => "0123456789",
            CharClass::Symbol if no_lookalikes => PLAIN_SYMBOLS,
            CharClass::Symbol => SYMBOLS,
        };
        all.chars()
            .filter(move |c| !(no_lookalikes && LOOKALIKES.contains(*c)))
    }

    /// The class as a person reads it after "include".
    pub fn described(self) -> &'static str {
        match self {
            CharClass::Lower => "a lower-case letter",
            CharClass::Upper => "a capital letter",
            CharClass::Digit => "a digit",
            CharClass::Symbol => "a symbol such as ! or #",
        }
    }
}

/// How first passwords are generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    /// `length` characters drawn uniformly from the union of `classes`, every password holding
    /// at least one character of each class (drawn afresh until it does, so every such
    /// password is equally likely). With `no_lookalikes` the characters `l 1 I i | O 0 o` never
    /// appear and symbols come only from `! # % + = ? @ * -`; without it symbols are ASCII
    /// punctuation less quotes, backslash and backtick.
    Characters {
        /// Characters in a password.
        length: usize,
        /// The classes to draw from, each at least once.
        classes: Vec<CharClass>,
        /// Leave out characters easily mistaken for one another.
        no_lookalikes: bool,
    },
    /// `words` lower-case words from the shipped list joined by `-`, followed by `-` and
    /// `digits` digits when `digits` is not 0 (e.g. "tiger-apple-cloud-47"), for young
    /// students.
    Words {
        /// Words in a password.
        words: usize,
        /// Digits at the end.
        digits: usize,
    },
}

/// A school's password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How first passwords are generated.
    pub generated: Generated,
    /// The shortest password a person may choose (default 8).
    pub min_length: usize,
    /// Classes a chosen password must contain (default none).
    pub require_classes: Vec<CharClass>,
}

impl Default for Policy {
    /// Ten characters from lower, upper and digit without look-alikes; chosen passwords need
    /// at least 8 characters.
    fn default() -> Self {
        Policy {
            generated: Generated::Characters {
                length: 10,
                classes: vec![CharClass::Lower, CharClass::Upper, CharClass::Digit],
                no_lookalikes: true,
            },
            min_length: 8,
            require_classes: Vec::new(),
        }
    }
}

impl Policy {
    /// Checks the policy itself, for config validation. Characters needs a length in 6..=128
    /// and at least one class, none twice; Words needs 2..=8 words and 0..=6 digits;
    /// `min_length` must be in 6..=128. Every generated password must pass
    /// [`Policy::check_chosen`] with no user name: the shortest one may not be under
    /// `min_length`, and each of `require_classes` must be in every one (Words passwords hold
    /// lower-case letters and symbols, and digits when `digits` is not 0). The error is a
    /// sentence.
    pub fn validate(&self) -> Result<(), String> {
        if !(6..=128).contains(&self.min_length) {
            return Err(format!(
                "the minimum length of a chosen password must be between 6 and 128, not {}",
                self.min_length
            ));
        }
        let (shortest, always) = match &self.generated {
            Generated::Characters {
                length, classes, ..
            } => {
                if !(6..=128).contains(length) {
                    return Err(format!(
                        "a generated password's length must be between 6 and 128, not {length}"
                    ));
                }
                if classes.is_empty() {
                    return Err("a generated password needs at least one character class".into());
                }
                if let Some(class) = classes
                    .iter()
                    .enumerate()
                    .find_map(|(i, class)| classes[..i].contains(class).then_some(class))
                {
                    return Err(format!("`{}` is listed twice in the classes", class.name()));
                }
                (*length, classes.clone())
            }
            Generated::Words { words, digits } => {
                if !(2..=8).contains(words) {
                    return Err(format!(
                        "a word password needs between 2 and 8 words, not {words}"
                    ));
                }
                if *digits > 6 {
                    return Err(format!(
                        "a word password may end in at most 6 digits, not {digits}"
                    ));
                }
                let mut always = vec![CharClass::Lower, CharClass::Symbol];
                if *digits > 0 {
                    always.push(CharClass::Digit);
                }
                (words_length(*words, *digits, *WORD_LENGTHS.start()), always)
            }
        };
        if shortest < self.min_length {
            return Err(format!(
                "generated passwords can be as short as {shortest} characters, below the minimum of {} for chosen ones",
                self.min_length
            ));
        }
        if let Some(class) = self.require_classes.iter().find(|c| !always.contains(c)) {
            return Err(format!(
                "chosen passwords must include {}, but generated ones do not always",
                class.described()
            ));
        }
        Ok(())
    }

    /// A fresh password from the operating system's random number generator, every choice
    /// made without modulo bias. Fails if the policy is invalid ([`Policy::validate`]) or the
    /// operating system gives no randomness.
    pub fn generate(&self) -> Result<Zeroizing<String>, GenerateError> {
        self.validate().map_err(GenerateError)?;
        let mut rng = SysRng;
        match &self.generated {
            Generated::Characters {
                length,
                classes,
                no_lookalikes,
            } => {
                let alphabet: Vec<char> = classes
                    .iter()
                    .flat_map(|class| class.alphabet(*no_lookalikes))
                    .collect();
                let mut password = Zeroizing::new(String::with_capacity(*length));
                loop {
                    password.clear();
                    for _ in 0..*length {
                        password.push(alphabet[below(&mut rng, alphabet.len())?]);
                    }
                    if classes
                        .iter()
                        .all(|class| password.chars().any(|c| class.contains(c)))
                    {
                        return Ok(password);
                    }
                }
            }
            Generated::Words { words, digits } => {
                let capacity = words_length(*words, *digits, *WORD_LENGTHS.end());
                let mut password = Zeroizing::new(String::with_capacity(capacity));
                for i in 0..*words {
                    if i > 0 {
                        password.push('-');
                    }
                    password.push_str(WORDS[below(&mut rng, WORDS.len())?]);
                }
                if *digits > 0 {
                    password.push('-');
                }
                for _ in 0..*digits {
                    password.push(char::from(b"0123456789"[below(&mut rng, 10)?]));
                }
                Ok(password)
            }
        }
    }

    /// Checks a password a person chose: at least `min_length` and at most 256 characters, each
    /// of `require_classes`, and not the user name (ignoring case, when the user name has at
    /// least 3 characters). The error is a sentence for the person.
    pub fn check_chosen(&self, password: &str, user_name: &str) -> Result<(), String> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(format!("use at least {} characters", self.min_length));
        }
        if length > MAX_CHOSEN {
            return Err(format!("use at most {MAX_CHOSEN} characters"));
        }
        if let Some(class) = self
            .require_classes
            .iter()
            .find(|class| !password.chars().any(|c| class.contains(c)))
        {
            return Err(format!("include {}", class.described()));
        }
        if user_name.chars().count() >= 3
            && password.to_lowercase().contains(&user_name.to_lowercase())
        {
            return Err("do not include your username".into());
        }
        Ok(())
    }

    /// Entropy in bits of a generated password, for a valid policy: exact for Characters (the
    /// log of how many passwords hold every class) and for Words.
    pub fn entropy_bits(&self) -> f64 {
        match &self.generated {
            Generated::Characters {
                length,
                classes,
                no_lookalikes,
            } => {
                let sizes: Vec<f64> = classes
                    .iter()
                    .map(|class| class.alphabet(*no_lookalikes).count() as f64)
                    .collect();
                let total: f64 = sizes.iter().sum();
                let length = i32::try_from(*length).unwrap_or(i32::MAX);
                // Inclusion-exclusion over the classes a password could lack.
                let mut count = 0.0;
                for lacking in 0u32..(1 << sizes.len()) {
                    let missing: f64 = (0..sizes.len())
                        .filter(|i| lacking & (1 << i) != 0)
                        .map(|i| sizes[i])
                        .sum();
                    let sign = if lacking.count_ones() % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    };
                    count += sign * (total - missing).powi(length);
                }
                count.log2()
            }
            Generated::Words { words, digits } => {
                *words as f64 * (WORDS.len() as f64).log2() + *digits as f64 * 10f64.log2()
            }
        }
    }
}

/// Why no password could be generated.
#[derive(Debug)]
pub struct GenerateError(pub String);

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GenerateError {}

/// The length of a Words password whose words all have `word_length` letters.
fn words_length(words: usize, digits: usize, word_length: usize) -> usize {
    let digits = if digits > 0 { 1 + digits } else { 0 };
    words * word_length + words.saturating_sub(1) + digits
}

/// A uniform number below `n`: draws 32 bits and rejects the top values that would make some
/// results likelier than others.
fn below(rng: &mut SysRng, n: usize) -> Result<usize, GenerateError> {
    let n = u64::try_from(n)
        .ok()
        .filter(|n| (1..=1 << 32).contains(n))
        .ok_or_else(|| GenerateError(format!("cannot choose among {n} things")))?;
    let zone = (1 << 32) / n * n;
    loop {
        let x = rng.try_next_u32().map_err(|e| {
            GenerateError(format!(
                "the operating system's random number generator failed: {e}"
            ))
        })?;
        if u64::from(x) < zone {
            return Ok((u64::from(x) % n) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn characters(length: usize, classes: &[CharClass], no_lookalikes: bool) -> Policy {
        Policy {
            generated: Generated::Characters {
                length,
                classes: classes.to_vec(),
                no_lookalikes,
            },
            min_length: 6,
            require_classes: Vec::new(),
        }
    }

    fn words(words: usize, digits: usize) -> Policy {
        Policy {
            generated: Generated::Words { words, digits },
            ..Policy::default()
        }
    }

    const ALL: [CharClass; 4] = [
        CharClass::Lower,
        CharClass::Upper,
        CharClass::Digit,
        CharClass::Symbol,
    ];

    #[test]
    fn word_list_has_1024_distinct_simple_words() {
        assert_eq!(WORDS.len(), 1024);
        let distinct: HashSet<&str> = WORDS.iter().copied().collect();
        assert_eq!(distinct.len(), 1024);
        for word in WORDS.iter() {
            assert!(WORD_LENGTHS.contains(&word.len()), "{word}");
            assert!(word.bytes().all(|b| b.is_ascii_lowercase()), "{word}");
        }
    }

    #[test]
    fn class_names_round_trip() {
        for class in ALL {
            assert_eq!(CharClass::parse(class.name()), Some(class));
            assert!(class.alphabet(false).all(|c| class.contains(c)));
            for other in ALL.into_iter().filter(|other| *other != class) {
                assert!(!class.alphabet(false).any(|c| other.contains(c)));
            }
        }
        assert_eq!(CharClass::parse("Lower"), None);
        assert_eq!(CharClass::parse("letters"), None);
    }

    #[test]
    fn every_class_is_in_every_password() {
        for no_lookalikes in [true, false] {
            let policy = characters(6, &ALL, no_lookalikes);
            for _ in 0..1000 {
                let password = policy.generate().unwrap();
                assert_eq!(password.len(), 6);
                for class in ALL {
                    assert!(password.chars().any(|c| class.contains(c)), "{class:?}");
                }
            }
        }
    }

    #[test]
    fn no_lookalikes_ever_appear() {
        let policy = characters(32, &ALL, true);
        for _ in 0..500 {
            let password = policy.generate().unwrap();
            assert!(
                !password.chars().any(|c| LOOKALIKES.contains(c)),
                "{password:?}"
            );
            for c in password.chars() {
                assert!(
                    c.is_ascii_alphanumeric() || PLAIN_SYMBOLS.contains(c),
                    "{c}"
                );
            }
        }
    }

    #[test]
    fn symbols_are_typeable() {
        let policy = characters(64, &[CharClass::Symbol], false);
        for _ in 0..50 {
            let password = policy.generate().unwrap();
            assert!(password.chars().all(|c| SYMBOLS.contains(c)));
            assert!(!password.contains(['"', '\'', '\\', '`', ' ']));
        }
    }

    #[test]
    fn lengths_are_as_configured() {
        for length in [6, 10, 17, 128] {
            let policy = characters(length, &[CharClass::Lower, CharClass::Digit], true);
            assert_eq!(policy.generate().unwrap().chars().count(), length);
        }
    }

    #[test]
    fn word_passwords_are_words_then_digits() {
        for (count, digits) in [(3, 2), (2, 0), (8, 6)] {
            let policy = Policy {
                min_length: 6,
                ..words(count, digits)
            };
            for _ in 0..100 {
                let password = policy.generate().unwrap();
                let mut parts: Vec<&str> = password.split('-').collect();
                if digits > 0 {
                    let tail = parts.pop().unwrap();
                    assert_eq!(tail.len(), digits, "{password:?}");
                    assert!(tail.bytes().all(|b| b.is_ascii_digit()), "{password:?}");
                }
                assert_eq!(parts.len(), count, "{password:?}");
                assert!(
                    parts.iter().all(|word| WORDS.contains(word)),
                    "{password:?}"
                );
                policy.check_chosen(&password, "").unwrap();
            }
        }
    }

    #[test]
    fn two_passwords_differ() {
        for policy in [Policy::default(), words(3, 2)] {
            assert_ne!(policy.generate().unwrap(), policy.generate().unwrap());
        }
    }

    #[test]
    fn every_allowed_character_turns_up() {
        let policy = Policy::default();
        let allowed: Vec<char> = [CharClass::Lower, CharClass::Upper, CharClass::Digit]
            .into_iter()
            .flat_map(|class| class.alphabet(true))
            .collect();
        let mut counts: HashMap<char, usize> = HashMap::new();
        for _ in 0..2000 {
            for c in policy.generate().unwrap().chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.values().sum::<usize>(), 20_000);
        let expected = 20_000 / allowed.len();
        for c in &allowed {
            let count = counts.get(c).copied().unwrap_or(0);
            assert!(
                (expected / 2..expected * 2).contains(&count),
                "{c}: {count}"
            );
        }
        assert_eq!(counts.len(), allowed.len());
    }

    #[test]
    fn generated_passwords_pass_their_own_policy() {
        let policies = [
            Policy::default(),
            Policy {
                min_length: 12,
                require_classes: ALL.to_vec(),
                ..characters(12, &ALL, false)
            },
            Policy {
                require_classes: vec![CharClass::Lower, CharClass::Digit, CharClass::Symbol],
                ..words(3, 2)
            },
        ];
        for policy in policies {
            policy.validate().unwrap();
            for _ in 0..200 {
                policy
                    .check_chosen(&policy.generate().unwrap(), "")
                    .unwrap();
            }
        }
    }

    #[test]
    fn chosen_passwords_are_checked() {
        let policy = Policy {
            require_classes: vec![CharClass::Digit, CharClass::Upper],
            ..Policy::default()
        };
        assert_eq!(policy.check_chosen("Sunny-day-42", "smithj"), Ok(()));
        assert_eq!(policy.check_chosen("Ünïcödé9", "smithj"), Ok(()));
        for (password, want) in [
            ("Ab1", "use at least 8 characters"),
            // Eight characters, not eight bytes.
            ("Zoë1ééé", "use at least 8 characters"),
            ("Sunny-day", "include a digit"),
            ("sunny-day-42", "include a capital letter"),
            ("Hi-SmithJ-42", "do not include your username"),
        ] {
            assert_eq!(
                policy.check_chosen(password, "smithj"),
                Err(want.to_owned()),
                "{password}"
            );
        }
        let long = format!("A1{}", "x".repeat(255));
        assert_eq!(
            policy.check_chosen(&long, "smithj"),
            Err("use at most 256 characters".to_owned())
        );
        // A short user name is not looked for.
        assert_eq!(policy.check_chosen("Jo-Jo-Jo-42", "jo"), Ok(()));
        let symbols = Policy {
            require_classes: vec![CharClass::Symbol, CharClass::Lower],
            ..Policy::default()
        };
        assert_eq!(
            symbols.check_chosen("sunny day", ""),
            Err("include a symbol such as ! or #".to_owned())
        );
        assert_eq!(symbols.check_chosen("sunny.day", ""), Ok(()));
    }

    #[test]
    fn policies_are_validated() {
        assert_eq!(Policy::default().validate(), Ok(()));
        assert_eq!(words(3, 2).validate(), Ok(()));
        assert_eq!(characters(6, &ALL, true).validate(), Ok(()));
        for (policy, want) in [
            (
                characters(5, &ALL, true),
                "a generated password's length must be between 6 and 128, not 5",
            ),
            (
                characters(129, &ALL, true),
                "a generated password's length must be between 6 and 128, not 129",
            ),
            (
                characters(10, &[], true),
                "a generated password needs at least one character class",
            ),
            (
                characters(
                    10,
                    &[CharClass::Digit, CharClass::Lower, CharClass::Digit],
                    true,
                ),
                "`digit` is listed twice in the classes",
            ),
            (
                words(1, 2),
                "a word password needs between 2 and 8 words, not 1",
            ),
            (
                words(9, 2),
                "a word password needs between 2 and 8 words, not 9",
            ),
            (
                words(3, 7),
                "a word password may end in at most 6 digits, not 7",
            ),
            (
                Policy {
                    min_length: 5,
                    ..Policy::default()
                },
                "the minimum length of a chosen password must be between 6 and 128, not 5",
            ),
            (
                Policy {
                    min_length: 12,
                    ..Policy::default()
                },
                "generated passwords can be as short as 10 characters, below the minimum of 12 for chosen ones",
            ),
            (
                words(2, 0),
                "generated passwords can be as short as 7 characters, below the minimum of 8 for chosen ones",
            ),
            (
                Policy {
                    require_classes: vec![CharClass::Symbol],
                    ..Policy::default()
                },
                "chosen passwords must include a symbol such as ! or #, but generated ones do not always",
            ),
            (
                Policy {
                    require_classes: vec![CharClass::Upper],
                    ..words(3, 2)
                },
                "chosen passwords must include a capital letter, but generated ones do not always",
            ),
            (
                Policy {
                    require_classes: vec![CharClass::Digit],
                    ..words(3, 0)
                },
                "chosen passwords must include a digit, but generated ones do not always",
            ),
        ] {
            assert_eq!(policy.validate(), Err(want.to_owned()));
            assert_eq!(policy.generate().unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn entropy_is_estimated() {
        let default = Policy::default().entropy_bits();
        assert!(default >= 55.0, "{default}");
        // Requiring every class costs a little against 10 free draws from 55 characters.
        assert!(default < 10.0 * 55f64.log2());
        let single = characters(10, &[CharClass::Lower], false).entropy_bits();
        assert!((single - 10.0 * 26f64.log2()).abs() < 1e-9);
        let words = words(3, 2).entropy_bits();
        assert!((words - (30.0 + 2.0 * 10f64.log2())).abs() < 1e-9);
        assert!(characters(128, &ALL, false).entropy_bits().is_finite());
    }
}
