//! The demo and monitor pages load without a 404: every file they name (the
//! icon, scripts, and the modules those import) is served.

use crate::common::*;

/// Local paths in `attr="/…"` attributes and `from "/…"` / `from "./…"`
/// imports.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["src=\"", "href=\"", "from \""] {
        for (i, _) in text.match_indices(marker) {
            let rest = &text[i + marker.len()..];
            let Some(end) = rest.find('"') else { continue };
            let target = &rest[..end];
            if let Some(p) = target.strip_prefix("./") {
                out.push(format!("/{p}"));
            } else if target.starts_with('/') && !target.starts_with("//") {
                out.push(target.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_pages_name_no_file_that_is_missing() {
    let s = Server::start();
    let mut todo = vec!["/".to_string(), "/monitor.html".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) || seen.len() > 100 {
            continue;
        }
        let r = s.request("GET", &path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        if path == "/" || path.ends_with(".html") {
            assert!(
                text.contains(r#"<link rel="icon" href="/favicon.svg""#),
                "{path} names no icon, so browsers ask for /favicon.ico"
            );
        }
        todo.extend(references(&text));
    }
    assert!(seen.contains("/favicon.svg"), "{seen:?}");
    assert!(seen.contains("/switchboard-transports.js"), "{seen:?}");

    // Browsers and tools that ask for the classic name get the icon too.
    for path in ["/favicon.svg", "/favicon.ico"] {
        let r = s.request("GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("image/svg+xml")),
            "{path}"
        );
        assert!(
            String::from_utf8_lossy(&r.body).starts_with("<svg"),
            "{path}"
        );
    }
}
