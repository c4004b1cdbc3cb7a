//! Param validation: `commands::validate_params` for every command on any
//! JSON object (the wire's `params`, which the agent does not trust).
//!
//! A JSON value that is not an object is tried as the value of each param the
//! command takes, so the fuzzer reaches every value check without having to
//! guess the key first.
//!
//! Beyond "never panics", it checks the invariants `commands.rs` states:
//! validated params are canonical (`validate_params(c, &p.to_json()) == Ok(p)`),
//! belong to the command asked for, only carry keys the command takes, and a
//! validated `exec` command line always splits into a non-empty argv.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use warden::commands::{self, CommandName, ParamError, Params};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for command in CommandName::ALL {
        match &value {
            Value::Object(params) => check(command, params),
            other => {
                for spec in command.params() {
                    let mut params = Map::new();
                    params.insert(spec.name.to_owned(), other.clone());
                    check(command, &params);
                }
            }
        }
    }
});

fn check(command: CommandName, params: &Map<String, Value>) {
    match commands::validate_params(command, params) {
        Ok(validated) => {
            assert_eq!(validated.command(), command);
            for key in params.keys() {
                assert!(
                    command.params().iter().any(|spec| spec.name == key),
                    "{command} accepted unknown key {key:?}"
                );
            }
            let wire = validated.to_json();
            let again = commands::validate_params(command, &wire);
            assert_eq!(
                again.as_ref(),
                Ok(&validated),
                "{command}: not canonical: {wire:?}"
            );
            assert_eq!(again.unwrap().to_json(), wire);
            if let Params::Exec { command: line, argv } = &validated {
                let split = commands::split_command(line).expect("validated exec splits");
                assert!(!argv.is_empty());
                assert_eq!(&split, argv, "the carried argv is the split");
            }
            let _ = validated.is_mutating();
        }
        Err(err) => {
            assert_eq!(err.code(), "invalid_params");
            let _ = (err.to_string(), err.key());
            if let ParamError::Unknown { key, .. } = &err {
                assert!(params.contains_key(key));
            }
        }
    }
}
