//! The layout of one job in the Redis stream, in one place: which fields an
//! entry has, how a [`JobMessage`] becomes them, and how a stream entry read
//! back becomes a [`JobMessage`] or a reason it cannot. Pure functions on
//! values, so every malformed case is a unit test, not a Redis session.

use redis::streams::StreamId;

use crate::JobMessage;

/// Field holding [`JobMessage::job_id`].
pub(crate) const JOB_FIELD: &str = "job";
/// Field holding [`JobMessage::attempt`] in decimal.
pub(crate) const ATTEMPT_FIELD: &str = "attempt";

/// The field/value pairs of the entry for `message`, in the order
/// `XADD key * job <id> attempt <n>` writes them.
pub(crate) fn entry_fields(message: &JobMessage) -> [(&'static str, String); 2] {
    [
        (JOB_FIELD, message.job_id.clone()),
        (ATTEMPT_FIELD, message.attempt.to_string()),
    ]
}

/// Reads a stream entry back. An entry without a job id, or with an attempt
/// that is not a positive integer, was not written by this crate (or by a
/// newer, incompatible one); the caller discards it rather than hand a
/// half-read job to the job service. A missing `attempt` reads as 1.
pub(crate) fn parse_entry(entry: &StreamId) -> Result<JobMessage, String> {
    let job_id: String = match entry.map.get(JOB_FIELD) {
        None => return Err(format!("no {JOB_FIELD:?} field")),
        Some(value) => redis::from_redis_value_ref(value)
            .map_err(|error| format!("{JOB_FIELD:?} is not a string: {error}"))?,
    };
    if job_id.is_empty() {
        return Err(format!("empty {JOB_FIELD:?} field"));
    }
    let attempt = match entry.map.get(ATTEMPT_FIELD) {
        None => 1,
        Some(value) => redis::from_redis_value_ref::<String>(value)
            .ok()
            .and_then(|text| text.parse::<u32>().ok())
            .filter(|attempt| *attempt > 0)
            .ok_or_else(|| format!("{ATTEMPT_FIELD:?} is not a positive integer: {value:?}"))?,
    };
    Ok(JobMessage { job_id, attempt })
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    fn entry(fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: "1-0".to_owned(),
            map: fields
                .iter()
                .map(|(field, value)| {
                    (
                        field.to_string(),
                        Value::BulkString(value.as_bytes().to_vec()),
                    )
                })
                .collect(),
            ..StreamId::default()
        }
    }

    fn check(fields: &[(&str, &str)], expected: Result<(&str, u32), &str>) {
        let parsed = parse_entry(&entry(fields));
        match expected {
            Ok((job_id, attempt)) => assert_eq!(
                parsed,
                Ok(JobMessage {
                    job_id: job_id.to_owned(),
                    attempt
                }),
                "{fields:?}"
            ),
            Err(reason) => {
                let error = parsed.expect_err("should not parse");
                assert!(error.contains(reason), "{fields:?}: {error}");
            }
        }
    }

    #[test]
    fn reads_entries_this_crate_writes() {
        let message = JobMessage {
            job_id: "0193a1b2".to_owned(),
            attempt: 3,
        };
        let fields = entry_fields(&message);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        check(&fields, Ok(("0193a1b2", 3)));
    }

    #[test]
    fn table_of_entries() {
        check(&[("job", "j1")], Ok(("j1", 1)));
        check(
            &[("job", "j1"), ("attempt", "2"), ("extra", "x")],
            Ok(("j1", 2)),
        );
        check(&[], Err("no \"job\" field"));
        check(&[("attempt", "1")], Err("no \"job\" field"));
        check(&[("job", "")], Err("empty"));
        check(&[("job", "j"), ("attempt", "0")], Err("positive integer"));
        check(&[("job", "j"), ("attempt", "-1")], Err("positive integer"));
        check(
            &[("job", "j"), ("attempt", "many")],
            Err("positive integer"),
        );
        check(
            &[("job", "j"), ("attempt", "99999999999")],
            Err("positive integer"),
        );
    }

    #[test]
    fn rejects_a_job_field_that_is_not_text() {
        let mut bad = entry(&[]);
        bad.map.insert(JOB_FIELD.to_owned(), Value::Array(vec![]));
        assert!(parse_entry(&bad).is_err());
    }
}
