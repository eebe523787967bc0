//! The files under `static/`, compiled into the binary so it serves the demo
//! page from any working directory (e.g. `./target/release/switchboard`).

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
    file!("switchboard.js", "text/javascript"),
    file!("switchboard-transports.js", "text/javascript"),
    file!("switchboard-docs.js", "text/javascript"),
    file!("ot.js", "text/javascript"),
    file!("monitor.html", "text/html"),
    file!("favicon.svg", "image/svg+xml"),
];

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
}
