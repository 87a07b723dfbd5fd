//! Reading decisions back from files, for `gatehouse exercised` and `gatehouse suggest`: the decision
//! log's own JSON lines, or the files an OpenTelemetry Collector's `file` exporter writes (OTLP JSON,
//! one `ExportLogsServiceRequest` per line).
//!
//! A file's first non-blank line says which it is: an OTLP JSON request (an object with
//! `resourceLogs`, `resourceSpans`, `resourceMetrics` or `resourceProfiles`) makes it a Collector's
//! file; any other JSON object, a decision log. In a Collector's file every line must be a request,
//! and every record of the scope [`SCOPE_NAME`] a decision whose body is a decision log line; a line
//! or record that is not is an error naming the file and line. Records of other scopes (other
//! services' logs) and requests of other signals are not decisions and are passed over. In a
//! decision log, lines that are not entries (one cut short by a crash) are skipped and counted, as
//! they always were.
//!
//! What is read is bounded: a line of at most [`MAX_LINE_BYTES`], and [`MAX_TOTAL_BYTES`] over all
//! files; beyond either, reading stops with an error rather than take the machine's memory. Error
//! messages name the file, the line and what is wrong, never the line's text.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::entry::DecisionEntry;
use super::otlp::SCOPE_NAME;

/// The longest line read; a Collector writes a whole batch of records on one line.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// The most bytes read over all the files of one command.
pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;

/// Which kind of file a file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The decision log's JSON lines.
    DecisionLog,
    /// A Collector's `file` exporter output: OTLP JSON.
    OtlpJson,
}

/// Why decisions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: the line is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { path: String, line: usize },
    #[error("the logs hold more than {MAX_TOTAL_BYTES} bytes in all; give fewer files with --log")]
    TooLarge,
    #[error(
        "{path}:{line}: neither a decision log entry nor an OTLP JSON request ({why}); a file's first line says which the file holds"
    )]
    Unknown {
        path: String,
        line: usize,
        why: String,
    },
    #[error("{path}:{line}: not an OTLP JSON logs request ({why})")]
    Otlp {
        path: String,
        line: usize,
        why: String,
    },
    #[error(
        "{path}:{line}: record {record} of scope {SCOPE_NAME} is not a gatehouse decision ({why})"
    )]
    Record {
        path: String,
        line: usize,
        record: usize,
        why: String,
    },
}

/// The decisions of some files.
#[derive(Debug, Default)]
pub struct ReadLogs {
    pub entries: Vec<DecisionEntry>,
    /// Per file: its path, how it was read, decision log lines that were not entries (skipped),
    /// and OTLP records that were not gatehouse decisions (passed over).
    pub files: Vec<FileRead>,
}

#[derive(Debug)]
pub struct FileRead {
    pub path: PathBuf,
    /// `None` for a file with no lines.
    pub format: Option<LogFormat>,
    pub skipped: usize,
    pub other_records: usize,
}

/// Reads every file's decisions, in the order given.
pub fn read_logs(paths: &[PathBuf]) -> Result<ReadLogs, ReadError> {
    let mut read = ReadLogs::default();
    let mut budget = MAX_TOTAL_BYTES;
    for path in paths {
        let file = File::open(path).map_err(|source| ReadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let summary = read_from(path, BufReader::new(file), &mut budget, &mut read.entries)?;
        read.files.push(summary);
    }
    Ok(read)
}

/// Reads one file's decisions into `entries`, spending `budget` bytes.
fn read_from(
    path: &Path,
    mut reader: impl BufRead,
    budget: &mut u64,
    entries: &mut Vec<DecisionEntry>,
) -> Result<FileRead, ReadError> {
    let shown = || path.display().to_string();
    let mut summary = FileRead {
        path: path.to_owned(),
        format: None,
        skipped: 0,
        other_records: 0,
    };
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        let Some(line) =
            next_line(&mut reader, &mut buffer, budget).map_err(|e| e.at(path, number))?
        else {
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let format = match summary.format {
            Some(format) => format,
            None => {
                let format = detect(line).map_err(|why| ReadError::Unknown {
                    path: shown(),
                    line: number,
                    why,
                })?;
                summary.format = Some(format);
                format
            }
        };
        match format {
            LogFormat::DecisionLog => match serde_json::from_slice::<DecisionEntry>(line) {
                Ok(entry) => entries.push(entry),
                Err(_) => summary.skipped += 1,
            },
            LogFormat::OtlpJson => {
                summary.other_records += otlp_line(line, entries).map_err(|e| match e {
                    LineError::Request(why) => ReadError::Otlp {
                        path: shown(),
                        line: number,
                        why,
                    },
                    LineError::Record(record, why) => ReadError::Record {
                        path: shown(),
                        line: number,
                        record,
                        why,
                    },
                })?;
            }
        }
    }
    Ok(summary)
}

/// Why a line could not be read, before the file and line are known.
enum LineRead {
    Io(std::io::Error),
    TooLong,
    TooLarge,
}

impl LineRead {
    fn at(self, path: &Path, line: usize) -> ReadError {
        let path = path.display().to_string();
        match self {
            LineRead::Io(source) => ReadError::Io { path, source },
            LineRead::TooLong => ReadError::LineTooLong { path, line },
            LineRead::TooLarge => ReadError::TooLarge,
        }
    }
}

/// The next line, without its line ending, reading at most [`MAX_LINE_BYTES`] and what is left of
/// `budget` (which it spends); `None` at the end.
fn next_line<'b>(
    reader: &mut impl BufRead,
    buffer: &'b mut Vec<u8>,
    budget: &mut u64,
) -> Result<Option<&'b [u8]>, LineRead> {
    buffer.clear();
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
    let n = reader
        .by_ref()
        .take(limit.min(budget.saturating_add(1)))
        .read_until(b'\n', buffer)
        .map_err(LineRead::Io)?;
    if n == 0 {
        return Ok(None);
    }
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    if n > *budget {
        return Err(LineRead::TooLarge);
    }
    *budget -= n;
    let line = buffer.strip_suffix(b"\n").unwrap_or(buffer);
    if line.len() > MAX_LINE_BYTES {
        return Err(LineRead::TooLong);
    }
    Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
}

/// Just enough of a line to tell a Collector's request from a decision log entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    resource_logs: Option<IgnoredAny>,
    resource_spans: Option<IgnoredAny>,
    resource_metrics: Option<IgnoredAny>,
    resource_profiles: Option<IgnoredAny>,
}

/// What a file's first line says the file is.
fn detect(line: &[u8]) -> Result<LogFormat, String> {
    let probe: Probe = serde_json::from_slice(line).map_err(|e| json_error(&e))?;
    let otlp = probe.resource_logs.is_some()
        || probe.resource_spans.is_some()
        || probe.resource_metrics.is_some()
        || probe.resource_profiles.is_some();
    Ok(if otlp {
        LogFormat::OtlpJson
    } else {
        LogFormat::DecisionLog
    })
}

/// An OTLP JSON `ExportLogsServiceRequest` (or `LogsData`), as far as decisions need it. Members
/// not named here (the resource, timestamps, attributes, other signals) are not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs {
    #[serde(default)]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs {
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    log_records: Vec<Record>,
}

#[derive(Deserialize)]
struct Scope {
    #[serde(default)]
    name: String,
}

/// A record; its body is read as a decision only when its scope is gatehouse's, so another
/// service's body may be of any kind.
#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    body: Option<serde_json::Value>,
}

/// The OTLP JSON form of a string `AnyValue`; a body of another kind fails to read as one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StringValue {
    string_value: String,
}

enum LineError {
    Request(String),
    /// The record's place in the line (from 1), and what is wrong with it.
    Record(usize, String),
}

/// Adds the line's decisions to `entries`; returns how many records were not gatehouse's.
fn otlp_line(line: &[u8], entries: &mut Vec<DecisionEntry>) -> Result<usize, LineError> {
    let request: Request =
        serde_json::from_slice(line).map_err(|e| LineError::Request(json_error(&e)))?;
    let mut others = 0;
    let mut place = 0;
    for scope_logs in request.resource_logs.iter().flat_map(|r| &r.scope_logs) {
        let ours = scope_logs
            .scope
            .as_ref()
            .is_some_and(|s| s.name == SCOPE_NAME);
        for record in &scope_logs.log_records {
            place += 1;
            if !ours {
                others += 1;
                continue;
            }
            let body = record
                .body
                .as_ref()
                .ok_or_else(|| LineError::Record(place, "it has no body".to_owned()))?;
            let body = StringValue::deserialize(body).map_err(|_| {
                LineError::Record(place, "its body is not a string value".to_owned())
            })?;
            let entry: DecisionEntry = serde_json::from_str(&body.string_value).map_err(|e| {
                LineError::Record(
                    place,
                    format!("its body is not a decision log entry: {}", json_error(&e)),
                )
            })?;
            entries.push(entry);
        }
    }
    Ok(others)
}

/// What is wrong with some JSON, and where, without repeating any of its text.
fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "JSON cut short",
        serde_json::error::Category::Data => "a member is missing or of the wrong type",
    };
    format!("{what} at column {}", e.column())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::sample;

    fn line_of(n: i64) -> String {
        let mut line = String::new();
        sample(n).decided().write_line(None, &mut line);
        line
    }

    /// A Collector's request holding these decision lines as gatehouse records, and a record of
    /// another service.
    fn request(lines: &[String]) -> String {
        let records: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "timeUnixNano": "1700000000000000000",
                    "severityNumber": 9,
                    "body": {"stringValue": l.trim_end()},
                    "attributes": [{"key": "gatehouse.decision.allowed", "value": {"boolValue": true}}],
                })
            })
            .collect();
        serde_json::json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gatehouse"}}]},
            "scopeLogs": [
                {"scope": {"name": "other.library"}, "logRecords": [{"body": {"stringValue": "hello"}}]},
                {"scope": {"name": SCOPE_NAME, "version": "0.1.0"}, "logRecords": records},
            ],
        }]})
        .to_string()
    }

    fn read(text: &str) -> Result<(Vec<DecisionEntry>, FileRead), ReadError> {
        read_with_budget(text, MAX_TOTAL_BYTES)
    }

    fn read_with_budget(
        text: &str,
        mut budget: u64,
    ) -> Result<(Vec<DecisionEntry>, FileRead), ReadError> {
        let mut entries = Vec::new();
        let summary = read_from(
            Path::new("decisions.json"),
            text.as_bytes(),
            &mut budget,
            &mut entries,
        )?;
        Ok((entries, summary))
    }

    #[test]
    fn a_collector_file_gives_the_same_entries_as_the_decision_log() {
        let lines: Vec<String> = (0..5).map(line_of).collect();
        let jsonl = lines.concat();
        let otlp = format!("{}\n\n{}\n", request(&lines[..2]), request(&lines[2..]));
        let (from_log, log) = read(&jsonl).unwrap();
        let (from_otlp, collected) = read(&otlp).unwrap();
        assert_eq!(log.format, Some(LogFormat::DecisionLog));
        assert_eq!(collected.format, Some(LogFormat::OtlpJson));
        assert_eq!(from_log.len(), 5);
        assert_eq!(from_log, from_otlp);
        assert_eq!(collected.other_records, 2, "one per request");
    }

    #[test]
    fn other_signals_and_scopes_are_passed_over() {
        let spans = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}"#;
        let other =
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"3"}}]}]}]}"#;
        let (entries, summary) = read(&format!("{spans}\n{other}\n{{}}\n")).unwrap();
        assert!(entries.is_empty());
        assert_eq!(summary.format, Some(LogFormat::OtlpJson));
        assert_eq!(summary.other_records, 1);
    }

    fn error_of(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn a_malformed_line_of_a_collector_file_is_an_error_naming_its_line() {
        let good = request(&[line_of(1)]);
        let cut = &good[..good.len() / 2];
        let message = error_of(&format!("{good}\n{cut}\n"));
        assert!(
            message.starts_with("decisions.json:2: not an OTLP JSON logs request (JSON cut short"),
            "{message}"
        );
        for wrong in [
            r#"{"resourceLogs": {"scopeLogs": []}}"#,
            r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": 7}]}]}"#,
            r#"{"resourceLogs": [{"scopeLogs": [{"scope": {"name": 5}}]}]}"#,
            "[1, 2]",
            "not json",
        ] {
            let message = error_of(&format!("{good}\n{wrong}\n"));
            assert!(
                message.starts_with("decisions.json:2: not an OTLP JSON logs request ("),
                "{wrong}: {message}"
            );
        }
    }

    #[test]
    fn a_record_of_gatehouse_scope_must_be_a_decision() {
        let scope = |records: &str| {
            format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"scope":{{"name":"{SCOPE_NAME}"}},"logRecords":[{records}]}}]}}]}}"#
            )
        };
        for (records, why) in [
            ("{}", "it has no body"),
            (
                r#"{"body":{"intValue":"3"}}"#,
                "its body is not a string value",
            ),
            (
                r#"{"body":{"stringValue":"secret-ish text"}}"#,
                "its body is not a decision log entry: not valid JSON at column 1",
            ),
            (
                r#"{"body":{"stringValue":"{\"time_ms\":1}"}}"#,
                "its body is not a decision log entry: a member is missing",
            ),
        ] {
            let message = error_of(&format!("{}\n", scope(records)));
            assert!(
                message.starts_with(&format!(
                    "decisions.json:1: record 1 of scope {SCOPE_NAME} is not a gatehouse decision ({why}"
                )),
                "{records}: {message}"
            );
            assert!(!message.contains("secret-ish"), "{message}");
        }
    }

    #[test]
    fn a_first_line_that_is_no_json_object_is_an_error() {
        for first in ["garbage", "[]", "\"text\"", "{\"cut"] {
            let message = error_of(&format!("\n{first}\n{}", line_of(1)));
            assert!(
                message.starts_with(
                    "decisions.json:2: neither a decision log entry nor an OTLP JSON request"
                ),
                "{first}: {message}"
            );
        }
        // Later lines of a decision log that are not entries are skipped and counted, as before.
        let (entries, summary) = read(&format!("{}garbage\n{}", line_of(1), line_of(2))).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(summary.skipped, 1);
    }

    #[test]
    fn deep_and_huge_input_is_refused_with_clear_errors() {
        let deep = format!(
            "{{\"resourceLogs\":[{{\"scopeLogs\":[{{\"logRecords\":[{{\"body\":{}1{}}}]}}]}}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let message = error_of(&format!("{}\n{deep}\n", request(&[])));
        assert!(
            message.starts_with("decisions.json:2: not an OTLP JSON logs request"),
            "{message}"
        );
        let deep_first = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(error_of(&deep_first).starts_with("decisions.json:1: neither"));

        let huge = format!(
            "{{\"resourceLogs\":[],\"x\":\"{}\"}}\n",
            "x".repeat(MAX_LINE_BYTES)
        );
        let message = error_of(&huge);
        assert_eq!(
            message,
            format!("decisions.json:1: the line is longer than {MAX_LINE_BYTES} bytes")
        );
        let text = format!("{}{}", line_of(1), line_of(2));
        let first = u64::try_from(line_of(1).len()).unwrap();
        assert!(matches!(
            read_with_budget(&text, first + 10),
            Err(ReadError::TooLarge)
        ));
        assert_eq!(read_with_budget(&text, 2 * first + 2).unwrap().0.len(), 2);
    }

    #[test]
    fn an_empty_file_has_no_format_and_no_entries() {
        let (entries, summary) = read("\n  \n").unwrap();
        assert!(entries.is_empty());
        assert_eq!(summary.format, None);
    }
}
