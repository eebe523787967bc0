//! The files under `static/`, compiled into the binary so it serves the demo
//! page from any working directory (e.g. `./target/release/switchboard`).
//! The SDK's files ([`SDK`]) are also served under `/sdk/<version>/`, the
//! version being the server's (and the npm package's, `static/package.json`).

pub struct StaticFile {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// One entry of `FILES`: the file's name under `static/` and its type.
macro_rules! file {
    ($path:literal, $ty:literal) => {
        StaticFile {
            path: $path,
            content_type: concat!($ty, "; charset=utf-8"),
            body: include_bytes!(concat!("../static/", $path)),
        }
    };
}

pub const FILES: &[StaticFile] = &[
    file!("index.html", "text/html"),
    file!("demo.js", "text/javascript"),
    file!("demo-doc.js", "text/javascript"),
    file!("demo-bell.js", "text/javascript"),
    file!("demo-state.js", "text/javascript"),
    file!("demo-call.js", "text/javascript"),
    file!("demo-streams.js", "text/javascript"),
    file!("switchboard.js", "text/javascript"),
    file!("switchboard-transports.js", "text/javascript"),
    file!("switchboard-connection.js", "text/javascript"),
    file!("switchboard-docs.js", "text/javascript"),
    file!("switchboard-state.js", "text/javascript"),
    file!("switchboard-rpc.js", "text/javascript"),
    file!("switchboard-streams.js", "text/javascript"),
    file!("switchboard-events.js", "text/javascript"),
    file!("ot.js", "text/javascript"),
    file!("switchboard.d.ts", "text/plain"),
    file!("ot.d.ts", "text/plain"),
    file!("package.json", "application/json"),
    file!("monitor.html", "text/html"),
    file!("favicon.svg", "image/svg+xml"),
];

/// The SDK: the files of the npm package (`static/package.json`), which a
/// page on any origin may import.
pub const SDK: &[&str] = &[
    "switchboard.js",
    "switchboard-transports.js",
    "switchboard-connection.js",
    "switchboard-docs.js",
    "switchboard-state.js",
    "switchboard-rpc.js",
    "switchboard-streams.js",
    "switchboard-events.js",
    "ot.js",
    "switchboard.d.ts",
    "ot.d.ts",
    "package.json",
];

/// The prefix of the versioned SDK URLs: `/sdk/0.1.0/`.
pub const SDK_PREFIX: &str = concat!("/sdk/", env!("CARGO_PKG_VERSION"), "/");

/// Is this (canonical) path one of the SDK's files, at the top or under the
/// versioned prefix of any version?
pub fn is_sdk(path: &str) -> bool {
    let name = match path.strip_prefix("/sdk/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, name)| name),
        None => path.trim_start_matches('/'),
    };
    SDK.contains(&name)
}

/// An SDK file under [`SDK_PREFIX`]: `/sdk/0.1.0/switchboard.js`. Other
/// versions are not here (a 404, never another version's code).
pub fn find_versioned(path: &str) -> Option<&'static StaticFile> {
    let name = path.strip_prefix(SDK_PREFIX)?;
    SDK.contains(&name).then(|| find(name)).flatten()
}

pub fn find(path: &str) -> Option<&'static StaticFile> {
    let path = path.trim_start_matches('/');
    let path = match path {
        "" => "index.html",
        // What browsers ask for on pages without a `<link rel="icon">`.
        "favicon.ico" => "favicon.svg",
        p => p,
    };
    FILES.iter().find(|f| f.path == path)
}

#[cfg(test)]
mod tests {
    /// A file added to `static/` but not to `FILES` would be a 404 in the
    /// binary while working from a checkout.
    #[test]
    fn every_file_under_static_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
        for entry in std::fs::read_dir(dir).expect("static/") {
            let name = entry.expect("entry").file_name();
            let name = name.to_str().expect("a UTF-8 name");
            let file = super::find(name);
            assert!(file.is_some(), "static/{name} is missing from FILES");
            let on_disk = std::fs::read(format!("{dir}/{name}")).expect("read");
            assert_eq!(file.unwrap().body, &on_disk[..], "static/{name}");
        }
    }

    /// The npm package and the versioned URLs carry the server's version.
    #[test]
    fn the_package_version_is_the_servers() {
        let pkg: serde_json::Value =
            serde_json::from_slice(super::find("package.json").unwrap().body).expect("JSON");
        assert_eq!(pkg["version"], env!("CARGO_PKG_VERSION"));
        for name in super::SDK {
            assert!(super::find(name).is_some(), "{name}");
            let versioned = format!("{}{name}", super::SDK_PREFIX);
            assert!(super::find_versioned(&versioned).is_some(), "{versioned}");
            assert!(super::is_sdk(&versioned) && super::is_sdk(&format!("/{name}")));
        }
        assert!(super::find_versioned("/sdk/0.0.0-other/switchboard.js").is_none());
        assert!(super::find_versioned(&format!("{}index.html", super::SDK_PREFIX)).is_none());
        assert!(!super::is_sdk("/index.html") && !super::is_sdk("/sdk/x/demo.js"));
    }
}
