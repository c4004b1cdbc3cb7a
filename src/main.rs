//! The `warden` binary: parse arguments, dispatch, turn an error into one
//! line on stderr. Exit codes: 0 success, 1 runtime failure, 2 usage error.
use std::process::ExitCode;
use warden::cli::{self, Cli, TokenAction};

fn main() -> ExitCode {
    let parsed = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: {e}");
            return ExitCode::from(2);
        }
    };
    if let Cli::Ctl(args) = parsed {
        return ctl(args);
    }
    match run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::from(1)
        }
    }
}

/// `warden ctl`: its exit code is the server's verdict (0, 1, 2 or 3).
fn ctl(args: cli::CtlArgs) -> ExitCode {
    let request = warden::server::control::Request {
        line: args.line,
        json: args.json,
        wait_s: args.wait_s,
        yes: args.yes,
        key: None,
        signature: None,
    };
    let answer = match &args.key {
        Some(key) => warden::server::ctlsign::run(&args.data_dir, request, key),
        None => warden::server::control::request(&args.data_dir, &request),
    };
    match answer {
        Ok(reply) => {
            print!("{}", reply.stdout);
            ExitCode::from(reply.exit)
        }
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(parsed: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match parsed {
        Cli::Help(text) => print!("{text}"),
        Cli::Version => println!("warden {}", env!("CARGO_PKG_VERSION")),
        Cli::Server(config) => warden::server::run(config)?,
        Cli::Agent(args) => {
            let config = warden::agent::config::AgentConfig::load(args)?;
            warden::agent::run(config)?;
        }
        Cli::BackupKeys(args) => warden::cron::backup_keys(args)?,
        Cli::RestoreKeys(args) => warden::cron::restore_keys(args)?,
        Cli::Ctl(_) => unreachable!("handled before run"),
        Cli::ConfigCheck { file, kind } => print!("{}", warden::configcheck::check(&file, kind)?),
        Cli::OperatorKeyNew { out } => {
            println!("{}", warden::operator_keys::generate(&out)?);
            eprintln!(
                "private key written to {} (mode 0600); put the public key above in each agent's policy.operators",
                out.display()
            );
        }
        Cli::Token { action, data_dir } => {
            let store = warden::server::tokens::TokenStore::new(&data_dir);
            match action {
                TokenAction::Add(id) => println!("{}", store.add(&id)?.expose()),
                TokenAction::Remove(id) => {
                    store.remove(&id)?;
                    eprintln!(
                        "removed {id}; a running server with this data dir cuts it off within a second"
                    );
                }
                TokenAction::List => {
                    for id in store.load()?.agents.keys() {
                        println!("{id}");
                    }
                }
                TokenAction::AddOperator { name, read_only } => {
                    println!("{}", store.add_operator(&name, read_only)?.expose())
                }
                TokenAction::RemoveOperator(name) => {
                    store.remove_operator(&name)?;
                    eprintln!(
                        "removed operator {name}; its dashboard sessions end within a second"
                    );
                }
                TokenAction::ListOperators => {
                    for (name, record) in store.load_operators()?.operators {
                        let mode = if record.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        };
                        println!("{name} {mode}");
                    }
                }
            }
        }
    }
    Ok(())
}
