//! Frame decoding: `Message::parse` and `Message::parse_incoming` on any text
//! a peer could send (bytes that are not UTF-8 are converted lossily, as a
//! caller holding a broken frame might).
//!
//! Beyond "never panics", it checks:
//! - the two entry points agree: same message, and `parse_incoming` answers
//!   `Err(None)` (do not reply) exactly when the frame is a malformed `error`;
//! - a parsed message survives `to_json` and a second parse unchanged;
//! - the `error` frame we would send back for a rejected frame is itself a
//!   frame the peer accepts (an unparseable reply would start an error loop).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::protocol::{Envelope, Message};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let parsed = Message::parse(text);
    let incoming = Message::parse_incoming(text);
    let is_error_frame = Envelope::parse(text).is_ok_and(|envelope| envelope.kind == "error");
    match (&parsed, &incoming) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parse and parse_incoming disagree"),
        (Err(_), Err(None)) => {
            assert!(is_error_frame, "Err(None) for a frame that is not an error")
        }
        (Err(a), Err(Some(b))) => {
            assert!(!is_error_frame, "a malformed error frame would be answered");
            assert_eq!(a, b, "parse and parse_incoming reject differently");
        }
        _ => panic!("parse {parsed:?} but parse_incoming {incoming:?}"),
    }

    match parsed {
        Ok(message) => {
            let json = message.to_json();
            let again = Message::parse(&json).unwrap_or_else(|rejection| {
                panic!("to_json gave a frame that does not parse: {json} ({rejection:?})")
            });
            assert_eq!(message, again, "round trip changed the message: {json}");
            // Cheap accessors the server calls on every frame.
            let _ = message.reference();
            let _ = message.type_name();
        }
        Err(rejection) => {
            let reply = Message::Error(rejection.to_error_body()).to_json();
            match Message::parse_incoming(&reply) {
                Ok(Message::Error(body)) => assert_eq!(body, rejection.to_error_body()),
                other => panic!("our error reply {reply} does not parse back: {other:?}"),
            }
            let _ = rejection.code.to_string();
        }
    }
});
