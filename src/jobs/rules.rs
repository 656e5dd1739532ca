//! Pass/fail rules of a job, as a sans-IO state machine: console text and the program's
//! exit are fed in as they happen, and the verdict comes out as soon as it is decided.
//! Expected patterns must appear in order; a forbidden pattern anywhere fails the job;
//! the exit code must be the expected one (0 when none is given).

use regex::Regex;

#[derive(Debug, thiserror::Error)]
#[error("pattern {index} ({pattern:?}) is not a valid regular expression: {message}")]
pub struct RuleError {
    pub index: usize,
    pub pattern: String,
    pub message: String,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(String),
    TimedOut(String),
    Error(String),
    Cancelled,
}

impl Verdict {
    /// The job state this verdict ends in.
    pub fn state(&self) -> &'static str {
        match self {
            Verdict::Passed => "PASSED",
            Verdict::Failed(_) => "FAILED",
            Verdict::TimedOut(_) => "TIMED_OUT",
            Verdict::Error(_) => "ERROR",
            Verdict::Cancelled => "CANCELLED",
        }
    }

    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Passed => None,
            Verdict::Failed(reason) | Verdict::TimedOut(reason) | Verdict::Error(reason) => {
                Some(reason.clone())
            }
            Verdict::Cancelled => Some("cancelled".to_owned()),
        }
    }
}

/// The outcome of one rule, for reports (JUnit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    pub name: String,
    /// `None` when it passed.
    pub failure: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rules {
    expect: Vec<Regex>,
    forbid: Vec<Regex>,
    expect_exit_code: Option<i32>,
}

impl Rules {
    pub fn new(
        expect: &[String],
        forbid: &[String],
        expect_exit_code: Option<i32>,
    ) -> Result<Self, RuleError> {
        let compile = |patterns: &[String], offset: usize| {
            patterns
                .iter()
                .enumerate()
                .map(|(i, pattern)| {
                    regex::RegexBuilder::new(pattern)
                        .multi_line(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| RuleError {
                            index: offset + i,
                            pattern: pattern.clone(),
                            message: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            expect: compile(expect, 0)?,
            forbid: compile(forbid, expect.len())?,
            expect_exit_code,
        })
    }
}

/// Checks the rules against a run as it happens.
#[derive(Debug)]
pub struct RuleCheck {
    rules: Rules,
    text: String,
    /// Where the next expected pattern is searched from.
    position: usize,
    matched: usize,
    forbidden_seen: Option<usize>,
    exit: Option<i32>,
}

/// Console text kept for matching; older text is dropped (matches are found as it
/// arrives, so only a window is needed for patterns spanning chunks).
const WINDOW: usize = 64 * 1024;

impl RuleCheck {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            text: String::new(),
            position: 0,
            matched: 0,
            forbidden_seen: None,
            exit: None,
        }
    }

    /// Feeds console output; returns a verdict once one is certain.
    pub fn console(&mut self, data: &str) -> Option<Verdict> {
        // Forbidden patterns are checked over the new text and a little before it (a
        // match may span chunks), cut at a character boundary.
        let checked_from = floor_char_boundary(&self.text, self.text.len().saturating_sub(1024));
        self.text.push_str(data);
        if self.forbidden_seen.is_none() {
            self.forbidden_seen = self
                .rules
                .forbid
                .iter()
                .position(|re| re.is_match(&self.text[checked_from..]));
        }
        while let Some(re) = self.rules.expect.get(self.matched) {
            match re.find(&self.text[self.position..]) {
                Some(found) => {
                    self.position += found.end();
                    self.matched += 1;
                }
                None => break,
            }
        }
        if self.text.len() > 2 * WINDOW {
            let cut = floor_char_boundary(&self.text, self.text.len() - WINDOW);
            self.text.drain(..cut);
            self.position = self.position.saturating_sub(cut);
        }
        self.decided_early()
    }

    /// The program exited: the verdict is now final.
    pub fn exited(&mut self, code: i32) -> Verdict {
        self.exit = Some(code);
        self.verdict_on_exit(code)
    }

    /// The verdict an exit with `code` would give now, without recording the exit.
    pub fn verdict_on_exit(&self, code: i32) -> Verdict {
        if let Some(verdict) = self.forbidden() {
            return verdict;
        }
        if let Some(pattern) = self.rules.expect.get(self.matched) {
            return Verdict::Failed(format!(
                "the program exited with code {code} before the console showed /{pattern}/"
            ));
        }
        let expected = self.rules.expect_exit_code.unwrap_or(0);
        if code != expected {
            return Verdict::Failed(format!("exit code {code}, expected {expected}"));
        }
        Verdict::Passed
    }

    /// Time ran out before a verdict.
    pub fn timed_out(&self, seconds: u64) -> Verdict {
        let missing = match self.rules.expect.get(self.matched) {
            Some(pattern) => format!("still waiting for /{pattern}/"),
            None => "the program did not exit".to_owned(),
        };
        Verdict::TimedOut(format!("no verdict after {seconds} s: {missing}"))
    }

    /// A verdict before the program exits: a forbidden pattern fails at once; every
    /// expected pattern seen passes at once when no exit code is expected (firmware that
    /// never exits is judged by its output).
    fn decided_early(&self) -> Option<Verdict> {
        if let Some(verdict) = self.forbidden() {
            return Some(verdict);
        }
        let all_seen = self.matched == self.rules.expect.len() && !self.rules.expect.is_empty();
        (all_seen && self.rules.expect_exit_code.is_none()).then_some(Verdict::Passed)
    }

    fn forbidden(&self) -> Option<Verdict> {
        self.forbidden_seen.map(|i| {
            Verdict::Failed(format!(
                "the console showed forbidden /{}/",
                self.rules.forbid[i]
            ))
        })
    }

    /// One outcome per rule, for the JUnit report.
    pub fn outcomes(&self) -> Vec<RuleOutcome> {
        let mut outcomes = Vec::new();
        for (i, re) in self.rules.expect.iter().enumerate() {
            outcomes.push(RuleOutcome {
                name: format!("console shows /{re}/"),
                failure: (i >= self.matched).then(|| "not seen (in order)".to_owned()),
            });
        }
        for (i, re) in self.rules.forbid.iter().enumerate() {
            outcomes.push(RuleOutcome {
                name: format!("console never shows /{re}/"),
                failure: (self.forbidden_seen == Some(i)).then(|| "seen".to_owned()),
            });
        }
        if self.exit.is_some() || self.rules.expect_exit_code.is_some() {
            let expected = self.rules.expect_exit_code.unwrap_or(0);
            outcomes.push(RuleOutcome {
                name: format!("exit code is {expected}"),
                failure: match self.exit {
                    Some(actual) if actual == expected => None,
                    Some(actual) => Some(format!("exit code {actual}")),
                    None => Some("the program did not exit".to_owned()),
                },
            });
        }
        outcomes
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(expect: &[&str], forbid: &[&str], code: Option<i32>) -> RuleCheck {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        RuleCheck::new(Rules::new(&owned(expect), &owned(forbid), code).unwrap())
    }

    #[test]
    fn expected_patterns_in_order_across_chunks() {
        let mut check = rules(&["hello", "count.*3"], &[], None);
        assert_eq!(check.console("hel"), None);
        assert_eq!(check.console("lo\ncounting: 1 2"), None);
        assert_eq!(check.console(" 3\n"), Some(Verdict::Passed));
    }

    #[test]
    fn out_of_order_does_not_pass_and_exit_fails_it() {
        let mut check = rules(&["second", "first"], &[], None);
        assert_eq!(check.console("first\nsecond\n"), None);
        assert!(matches!(check.exited(0), Verdict::Failed(m) if m.contains("/first/")));
    }

    #[test]
    fn forbidden_fails_at_once_and_exit_codes_are_checked() {
        let mut check = rules(&[], &["panic"], None);
        assert!(matches!(
            check.console("kernel panic!"),
            Some(Verdict::Failed(_))
        ));
        let mut check = rules(&[], &[], Some(3));
        assert_eq!(check.exited(3), Verdict::Passed);
        let mut check = rules(&[], &[], None);
        assert!(matches!(check.exited(1), Verdict::Failed(m) if m.contains("expected 0")));
        let mut check = rules(&["x"], &[], Some(0));
        assert_eq!(
            check.console("x"),
            None,
            "an expected exit code waits for the exit"
        );
        assert_eq!(check.exited(0), Verdict::Passed);
    }

    #[test]
    fn forbidden_check_cuts_multibyte_text_safely() {
        let mut check = rules(&[], &["never"], None);
        for _ in 0..600 {
            assert_eq!(check.console("\u{b0}\u{fffd}"), None);
        }
    }

    #[test]
    fn bad_regex_names_its_index() {
        let error = Rules::new(&["ok".into()], &["(".into()], None).unwrap_err();
        assert_eq!(error.index, 1);
    }

    #[test]
    fn outcomes_list_every_rule() {
        let mut check = rules(&["a", "b"], &["z"], Some(0));
        check.console("a");
        check.exited(2);
        let failures: Vec<bool> = check
            .outcomes()
            .iter()
            .map(|o| o.failure.is_some())
            .collect();
        assert_eq!(failures, [false, true, false, true]);
    }
}
