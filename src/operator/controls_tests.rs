//! The server's words on a request line (`Controls`): taken out of the
//! params, only where they apply, and checked.
use super::*;

fn request(line: &str) -> Result<CommandRequest, ParseError> {
    match parse_line(line)? {
        Some(OperatorCommand::Send { request, .. } | OperatorCommand::Broadcast { request }) => {
            Ok(request)
        }
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn force_reason_batch_and_signatures_never_reach_the_params() {
    let r = request("send h1 start n0 force=true reason=\"failover drill\"").unwrap();
    assert!(r.params.is_empty(), "{:?}", r.params);
    assert!(r.controls.force);
    assert_eq!(r.controls.reason.as_deref(), Some("failover drill"));
    let r = request("broadcast stop n0 batch=3 signatures=2").unwrap();
    assert!(r.params.is_empty());
    assert_eq!(
        (r.controls.batch, r.controls.signatures),
        (Some(3), Some(2))
    );
    let r = request("send h1 restore_keys n0 backup_file=a.tar.gz force=true reason=x").unwrap();
    assert_eq!(r.params.len(), 1);
    assert!(r.controls.force);
}

#[test]
fn the_words_are_refused_where_they_do_not_apply_or_are_malformed() {
    for (line, needle) in [
        ("send h1 start n0 force=true", "go together"),
        ("send h1 start n0 reason=x", "go together"),
        (
            "send h1 start n0 force=yes reason=x",
            "force takes one value",
        ),
        (
            "send h1 start n0 force=true force=true reason=x",
            "force takes one value",
        ),
        ("send h1 start n0 force=true reason=\" \"", "reason= takes"),
        ("broadcast stop n0 batch=0", "batch= takes"),
        ("broadcast stop n0 batch=1001", "batch= takes"),
        ("send h1 stop n0 signatures=17", "signatures= takes"),
        // Not a word of the server for these: a param, refused as such.
        ("send h1 stop n0 force=true reason=x", "force"),
        ("send h1 stop n0 batch=2", "batch"),
    ] {
        let e = request(line).unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_params", "{line}");
        assert!(e.to_string().contains(needle), "{line}: {e}");
    }
}
