//! `switchboard` runs the hub; `switchboard token …` prints a signed token.

use switchboard::auth::{claims_for, Auth, Role};
use switchboard::config::Config;

const USAGE: &str = "usage:
  switchboard                 run the hub (settings from environment variables; see README.md)
  switchboard token --sub ID [--name NAME] [--role admin|service|user] [--rooms 'a,team-*'] [--ttl SECONDS]
                    [--mqtt-sub 'sensors/#,a/+'] [--mqtt-pub 'cmd/+']
                              print an HS256 token signed with SWITCHBOARD_JWT_SECRET
  switchboard --help | --version";

const TOKEN_USAGE: &str = "usage: switchboard token --sub ID [options]

Prints an HS256 token signed with the server's secret (SWITCHBOARD_JWT_SECRET
or SWITCHBOARD_JWT_SECRET_FILE must be set, as for the server).

  --sub ID              user id (required; may not start with guest-)
  --name NAME           display name
  --role ROLE           user (default), service or admin
  --rooms 'a,team-*'    rooms the token may join (default: any)
  --ttl SECONDS         lifetime (default 3600)
  --mqtt-sub FILTERS    MQTT topic filters it may subscribe to, comma-separated
  --mqtt-pub FILTERS    MQTT topic filters it may publish to, comma-separated

example: SWITCHBOARD_JWT_SECRET=… switchboard token --sub alice --name Alice --rooms 'general,team-*'";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Help and version need no settings: they work with a broken environment.
    let help = |a: &String| matches!(a.as_str(), "-h" | "--help" | "help");
    match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => return println!("{USAGE}"),
        Some("-V" | "--version" | "version") => {
            return println!("switchboard {}", env!("CARGO_PKG_VERSION"))
        }
        Some("token") if args[1..].iter().any(help) => return println!("{TOKEN_USAGE}"),
        _ => {}
    }
    match switchboard::config::log_format() {
        Ok(f) => switchboard::logging::init(f),
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            std::process::exit(2);
        }
    }
    for name in switchboard::config::unknown_vars() {
        log::warn!("{name} is set but is not a Switchboard setting (a typo?); ignored");
    }
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            std::process::exit(2);
        }
    };
    match args.first().map(String::as_str) {
        None => {
            let result = actix_web::rt::System::new().block_on(switchboard::serve(cfg));
            if let Err(e) = result {
                eprintln!("switchboard: {e}");
                std::process::exit(1);
            }
        }
        Some("token") => std::process::exit(token(&cfg, &args[1..])),
        Some(other) => {
            eprintln!("switchboard: unknown command {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn token(cfg: &Config, args: &[String]) -> i32 {
    if cfg.jwt_secret.is_none() {
        eprintln!("switchboard token: set SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_SECRET_FILE (the server's secret) first");
        return 2;
    }
    let (mut sub, mut name, mut role, mut rooms, mut ttl) = (None, None, None, None, 3600u64);
    let (mut mqtt_sub, mut mqtt_pub) = (None, None);
    let list = |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_string()).collect() };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            eprintln!("switchboard token: {flag} needs a value\n{USAGE}");
            return 2;
        };
        match flag.as_str() {
            "--sub" => sub = Some(value.clone()),
            "--name" => name = Some(value.clone()),
            "--role" => match value.as_str() {
                "admin" => role = Some(Role::Admin),
                "service" => role = Some(Role::Service),
                "user" => role = Some(Role::User),
                _ => {
                    eprintln!("switchboard token: --role is admin, service or user");
                    return 2;
                }
            },
            "--rooms" => rooms = Some(list(value)),
            "--mqtt-sub" => mqtt_sub = Some(list(value)),
            "--mqtt-pub" => mqtt_pub = Some(list(value)),
            "--ttl" => match value.parse() {
                Ok(v) => ttl = v,
                Err(_) => {
                    eprintln!("switchboard token: --ttl is a number of seconds");
                    return 2;
                }
            },
            _ => {
                eprintln!("switchboard token: unknown flag {flag}\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(sub) = sub else {
        eprintln!("switchboard token: --sub is required\n{USAGE}");
        return 2;
    };
    if let Some(why) = switchboard::ids::sub_problem(&sub) {
        eprintln!("switchboard token: {why}");
        return 2;
    }
    let auth = match Auth::from_config(cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("switchboard token: {e}");
            return 2;
        }
    };
    let mut claims = claims_for(&sub, name.as_deref(), role, rooms, ttl);
    (claims.mqtt_sub, claims.mqtt_pub) = (mqtt_sub, mqtt_pub);
    match auth.mint(&claims) {
        Ok(t) => {
            println!("{t}");
            0
        }
        Err(e) => {
            eprintln!("switchboard token: {e}");
            1
        }
    }
}
