//! What the server keeps of a command's result: bounded, whatever the agent
//! sent. An agent caps its own output (exec, payout, logs), but the server
//! does not trust that: a result or error text stored in commands.jsonl (and
//! kept in the server's memory) is at most [`MAX_STORED_RESULT`] /
//! [`MAX_STORED_ERROR`] bytes. What is cut ends with a marker giving the
//! full length, so nobody mistakes a cut text for the whole.
use crate::protocol::CommandResponse;
use serde_json::{Map, Value, json};

/// A result, serialized, at most (64 KiB).
pub const MAX_STORED_RESULT: usize = 64 * 1024;
/// An error text at most.
pub const MAX_STORED_ERROR: usize = 4 * 1024;

/// The marker ending a cut text.
pub fn marker(full_len: usize) -> String {
    format!("\n… [cut by the server: {full_len} bytes in all]")
}

/// The first `max` bytes of `text` (at a character boundary) and a marker.
fn head(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &text[..end], marker(text.len()))
}

/// A copy of `response` with its result and error bounded, for the record.
pub fn bounded(response: &CommandResponse) -> CommandResponse {
    let mut copy = response.clone();
    bound(&mut copy);
    copy
}

/// Bound `response`'s result and error in place.
pub fn bound(response: &mut CommandResponse) {
    if let Some(error) = &mut response.error
        && error.len() > MAX_STORED_ERROR
    {
        *error = head(error, MAX_STORED_ERROR);
    }
    if let Some(result) = &mut response.result {
        bound_result(result);
    }
}

/// Bound one result: a text is cut; an object's text fields (exec's
/// `stdout` and `stderr`) share the budget; anything still too large is
/// replaced by `{"truncated": true, "bytes": N, "head": "…"}`.
pub fn bound_result(result: &mut Value) {
    let size = serialized_len(result);
    if size <= MAX_STORED_RESULT {
        return;
    }
    // Room for keys, quotes and markers.
    let budget = MAX_STORED_RESULT - 1024;
    match result {
        Value::String(text) => *text = head(text, budget),
        Value::Object(map) => {
            let texts = map.values().filter(|v| v.is_string()).count().max(1);
            for value in map.values_mut() {
                if let Value::String(text) = value {
                    *text = head(text, budget / texts);
                }
            }
        }
        _ => {}
    }
    if serialized_len(result) > MAX_STORED_RESULT {
        let text = result.to_string();
        let mut cut = Map::new();
        cut.insert("truncated".into(), json!(true));
        cut.insert("bytes".into(), json!(size));
        cut.insert("head".into(), json!(head(&text, budget)));
        *result = Value::Object(cut);
    }
}

fn serialized_len(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_results_are_kept_whole() {
        let mut v = json!({"stdout": "ok", "stderr": "", "exit_code": 0});
        let before = v.clone();
        bound_result(&mut v);
        assert_eq!(v, before);
    }

    #[test]
    fn a_long_text_is_cut_with_a_marker_and_its_length() {
        let mut v = json!("é".repeat(100_000));
        bound_result(&mut v);
        let text = v.as_str().unwrap();
        assert!(v.to_string().len() <= MAX_STORED_RESULT);
        assert!(
            text.ends_with("[cut by the server: 200000 bytes in all]"),
            "{}",
            &text[text.len() - 60..]
        );
    }

    #[test]
    fn exec_fields_share_the_budget() {
        let mut v =
            json!({"stdout": "a".repeat(1 << 20), "stderr": "b".repeat(1 << 20), "exit_code": 1});
        bound_result(&mut v);
        assert!(v.to_string().len() <= MAX_STORED_RESULT);
        assert!(
            v["stdout"]
                .as_str()
                .unwrap()
                .contains("1048576 bytes in all")
        );
        assert!(v["stderr"].as_str().unwrap().starts_with("bbb"));
        assert_eq!(v["exit_code"], 1);
    }

    #[test]
    fn anything_else_too_large_is_replaced_by_a_marked_head() {
        let mut v = json!((0..100_000).collect::<Vec<u32>>());
        let size = v.to_string().len();
        bound_result(&mut v);
        assert!(v.to_string().len() <= MAX_STORED_RESULT);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["bytes"], size);
    }

    #[test]
    fn a_long_error_is_cut() {
        let mut r = CommandResponse::failed(
            "x",
            crate::protocol::ErrorCode::Internal,
            "e".repeat(10_000),
        );
        bound(&mut r);
        assert!(r.error.unwrap().len() < MAX_STORED_ERROR + 100);
    }
}
