//! JUnit XML for a finished job: one test suite (the job), one test case per rule, so
//! CI systems that read JUnit show which rule failed. The console log goes to
//! `system-out`.

use super::rules::{RuleOutcome, Verdict};
use virserver_coverage::report::xml_escape as escape;

pub struct JunitInput<'a> {
    pub job_name: &'a str,
    pub board: &'a str,
    pub verdict: &'a Verdict,
    pub outcomes: &'a [RuleOutcome],
    pub seconds: f64,
    pub console: &'a str,
}

pub fn render(input: &JunitInput<'_>) -> String {
    let mut cases: Vec<(String, Option<(&str, String)>)> = input
        .outcomes
        .iter()
        .map(|o| (o.name.clone(), o.failure.clone().map(|f| ("failure", f))))
        .collect();
    // Time-outs and errors are a case of their own: no rule failed, the run did.
    match input.verdict {
        Verdict::TimedOut(message) => cases.push((
            "run finishes in time".into(),
            Some(("failure", message.clone())),
        )),
        Verdict::Error(message) => cases.push(("run".into(), Some(("error", message.clone())))),
        Verdict::Cancelled => cases.push(("run".into(), Some(("error", "cancelled".into())))),
        Verdict::Failed(message) if cases.iter().all(|(_, f)| f.is_none()) => {
            cases.push(("run".into(), Some(("failure", message.clone()))))
        }
        _ => {}
    }
    if cases.is_empty() {
        cases.push(("run".into(), None));
    }
    let failures = cases
        .iter()
        .filter(|(_, f)| matches!(f, Some(("failure", _))))
        .count();
    let errors = cases
        .iter()
        .filter(|(_, f)| matches!(f, Some(("error", _))))
        .count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
        cases.len(),
        input.seconds
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
        escape(input.job_name),
        cases.len(),
        input.seconds
    ));
    for (name, failure) in &cases {
        xml.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape(input.board),
            escape(name)
        ));
        match failure {
            None => xml.push_str("/>\n"),
            Some((kind, message)) => xml.push_str(&format!(
                ">\n      <{kind} message=\"{}\"/>\n    </testcase>\n",
                escape(message)
            )),
        }
    }
    xml.push_str(&format!(
        "    <system-out>{}</system-out>\n  </testsuite>\n</testsuites>\n",
        escape(input.console)
    ));
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_console_are_escaped() {
        let outcomes = [
            RuleOutcome {
                name: "console shows /a<b/".into(),
                failure: None,
            },
            RuleOutcome {
                name: "exit code is 0".into(),
                failure: Some("exit code 3".into()),
            },
        ];
        let xml = render(&JunitInput {
            job_name: "smoke & co",
            board: "mps2-an385",
            verdict: &Verdict::Failed("exit code 3".into()),
            outcomes: &outcomes,
            seconds: 0.5,
            console: "hi\x07\n",
        });
        assert!(
            xml.contains("name=\"smoke &amp; co\" tests=\"2\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("console shows /a&lt;b/"));
        assert!(xml.contains("<system-out>hi\u{fffd}\n</system-out>"));
    }

    #[test]
    fn a_timeout_is_a_failed_case_of_its_own() {
        let xml = render(&JunitInput {
            job_name: "j",
            board: "b",
            verdict: &Verdict::TimedOut("no verdict after 1 s".into()),
            outcomes: &[],
            seconds: 1.0,
            console: "",
        });
        assert!(xml.contains("name=\"run finishes in time\""), "{xml}");
        assert!(xml.contains("failures=\"1\""));
    }
}
