//! Mapping Kea's `subnet_id` to a link prefix (kea.md §10).
//!
//! Read from Kea's dhcp6 configuration file: JSON with `#`, `//` and `/* */` comments and
//! `<?include "path"?>` directives; `Dhcp6.subnet6[]` and
//! `Dhcp6.shared-networks[].subnet6[]`, each with `id` and `subnet` ("prefix/len", host
//! bits masked). A subnet without `id` is numbered as Kea ≤ 2.4 does: shared-network
//! subnets first, then top-level ones, in file order, from 1 — taking the numbers no
//! explicit `id` uses. lqd's own `[[links]]` entries override the file.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::model::{mask, Prefix};

/// Most nested `<?include?>` levels followed.
const INCLUDE_DEPTH_MAX: usize = 8;

/// subnet_id → link prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    by_subnet: HashMap<u32, Prefix>,
}

/// Why Kea's configuration could not be read.
#[derive(Debug)]
pub enum LinksError {
    /// A file could not be read.
    Io(PathBuf, std::io::Error),
    /// An include directive is malformed, or includes nest too deep.
    Include(PathBuf, String),
    /// The text is not JSON once comments and includes are resolved.
    Json(PathBuf, serde_json::Error),
    /// A `subnet` is not "prefix/len", or an `id` is not a u32.
    Subnet(String),
}

impl std::fmt::Display for LinksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "reading {}: {e}", path.display()),
            Self::Include(path, what) => write!(f, "{}: {what}", path.display()),
            Self::Json(path, e) => write!(f, "{} is not JSON: {e}", path.display()),
            Self::Subnet(what) => write!(f, "Kea subnet6 entry: {what}"),
        }
    }
}

impl std::error::Error for LinksError {}

impl Links {
    /// The link prefix of a subnet.
    pub fn get(&self, subnet_id: u32) -> Option<Prefix> {
        self.by_subnet.get(&subnet_id).copied()
    }

    /// True when `address` lies inside a known link (a query's link-address names a link,
    /// S-31..S-35). A linear scan: queries with a link-address are not on a hot path.
    pub fn contains_address(&self, address: std::net::Ipv6Addr) -> bool {
        self.by_subnet.values().any(|p| p.contains(address))
    }

    /// Number of known subnets.
    pub fn len(&self) -> usize {
        self.by_subnet.len()
    }

    /// True when no subnet is known.
    pub fn is_empty(&self) -> bool {
        self.by_subnet.is_empty()
    }

    /// Set (or override) a subnet's prefix; the host bits are masked.
    pub fn insert(&mut self, subnet_id: u32, prefix: Prefix) {
        let address = (u128::from(prefix.address) & mask(prefix.len)).into();
        self.by_subnet.insert(
            subnet_id,
            Prefix {
                address,
                len: prefix.len,
            },
        );
    }

    /// Read Kea's dhcp6 configuration file.
    pub fn from_kea_file(path: &Path) -> Result<Self, LinksError> {
        let text = resolve(path, 0)?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| LinksError::Json(path.to_path_buf(), e))?;
        Self::from_kea_json(&json)
    }

    /// Read the subnets of a parsed configuration (a file's or `config-get`'s arguments).
    pub fn from_kea_json(json: &Value) -> Result<Self, LinksError> {
        let dhcp6 = json.get("Dhcp6").unwrap_or(json);
        let mut subnets: Vec<&Value> = Vec::new();
        for network in dhcp6
            .get("shared-networks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            subnets.extend(
                network
                    .get("subnet6")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
        }
        subnets.extend(
            dhcp6
                .get("subnet6")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        let mut links = Self::default();
        let mut unnumbered = Vec::new();
        for subnet in subnets {
            let prefix = parse_prefix(subnet.get("subnet").and_then(Value::as_str))?;
            match subnet.get("id") {
                Some(id) => {
                    let id = id.as_u64().and_then(|id| u32::try_from(id).ok());
                    let id = id.ok_or_else(|| LinksError::Subnet(format!("bad id {id:?}")))?;
                    links.insert(id, prefix);
                }
                None => unnumbered.push(prefix),
            }
        }
        let mut next = 1u32;
        for prefix in unnumbered {
            while links.by_subnet.contains_key(&next) {
                next += 1;
            }
            links.insert(next, prefix);
        }
        Ok(links)
    }
}

/// Parse "prefix/len".
pub fn parse_prefix(text: Option<&str>) -> Result<Prefix, LinksError> {
    let text = text.ok_or_else(|| LinksError::Subnet("missing \"subnet\"".into()))?;
    let bad = || LinksError::Subnet(format!("{text:?} is not prefix/len"));
    let (address, len) = text.split_once('/').ok_or_else(bad)?;
    let address: std::net::Ipv6Addr = address.trim().parse().map_err(|_| bad())?;
    let len: u8 = len.trim().parse().map_err(|_| bad())?;
    if len > 128 {
        return Err(bad());
    }
    Ok(Prefix {
        address: (u128::from(address) & mask(len)).into(),
        len,
    })
}

/// Read a file, resolve its includes and strip its comments.
fn resolve(path: &Path, depth: usize) -> Result<String, LinksError> {
    if depth > INCLUDE_DEPTH_MAX {
        return Err(LinksError::Include(
            path.to_path_buf(),
            "includes nest too deep".into(),
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| LinksError::Io(path.to_path_buf(), e))?;
    let text = strip_trailing_commas(&strip_comments(&text));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("<?include") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("?>").ok_or_else(|| {
            LinksError::Include(path.to_path_buf(), "unterminated <?include".into())
        })?;
        let directive = &rest[at + "<?include".len()..at + end];
        let included = directive.trim().trim_matches('"');
        if included.is_empty() {
            return Err(LinksError::Include(
                path.to_path_buf(),
                "empty <?include?>".into(),
            ));
        }
        out.push_str(&resolve(Path::new(included), depth + 1)?);
        rest = &rest[at + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Remove `#`, `//` and `/* */` comments outside JSON strings (kea.md §10.2).
pub fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if b == b'#' || rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |e| i + 2 + e + 2);
            i = end;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Remove commas that only whitespace separates from a closing `}` or `]`, outside strings:
/// Kea accepts them, and Debian's stock kea-dhcp6.conf has them once comments are gone.
pub fn strip_trailing_commas(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' && i + 1 < bytes.len() {
                out.extend_from_slice(&bytes[i..i + 2]);
                i += 2;
                continue;
            }
            in_string = b != b'"';
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
            if matches!(next, Some(b'}' | b']')) {
                i += 1;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kea_file_with_comments_shared_networks_and_unnumbered_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.json");
        fs::write(&extra, r#"{ "id": 7, "subnet": "2001:db8:4::1/64" }"#).unwrap();
        let main = dir.path().join("kea-dhcp6.json");
        let text = format!(
            r#"// Kea 2.2 lab
{{ "Dhcp6": {{
    # a hash comment
    "shared-networks": [ {{ "name": "floor-3",
        "subnet6": [ {{ "subnet": "2001:db8:30::/64" }} ] }} ],
    /* block
       comment */ "subnet6": [
        {{ "id": 1, "subnet": "2001:db8:1::/64", "comment": "not // a comment # here" }},
        {{ "subnet": "2001:db8:2::/64" }},
        <?include "{}"?>
    ]
}} }}"#,
            extra.display()
        );
        fs::write(&main, text).unwrap();
        let links = Links::from_kea_file(&main).unwrap();
        let prefix = |s: &str, len| Prefix {
            address: s.parse().unwrap(),
            len,
        };
        assert_eq!(links.get(1), Some(prefix("2001:db8:1::", 64)));
        // Unnumbered: the shared-network subnet first, then the top-level one, skipping 1.
        assert_eq!(links.get(2), Some(prefix("2001:db8:30::", 64)));
        assert_eq!(links.get(3), Some(prefix("2001:db8:2::", 64)));
        // Included, host bits masked.
        assert_eq!(links.get(7), Some(prefix("2001:db8:4::", 64)));
        assert_eq!(links.len(), 4);
    }

    #[test]
    fn trailing_commas_are_accepted_as_kea_does() {
        let text = r#"{ "a": [1, 2, ], "s": "x, }", "b": { "c": "%m\n", } }"#;
        let json: Value = serde_json::from_str(&strip_trailing_commas(text)).unwrap();
        assert_eq!(json["a"], serde_json::json!([1, 2]));
        assert_eq!(json["s"], "x, }");
        assert_eq!(json["b"]["c"], "%m\n");
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("kea.json");
        fs::write(
            &main,
            r#"{ "Dhcp6": { "subnet6": [ { "id": 1, "subnet": "2001:db8::" } ] } }"#,
        )
        .unwrap();
        let err = Links::from_kea_file(&main).unwrap_err().to_string();
        assert!(err.contains("is not prefix/len"), "{err}");
        fs::write(&main, r#"{ "Dhcp6": <?include "/nonexistent/x.json"?> }"#).unwrap();
        let err = Links::from_kea_file(&main).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/x.json"), "{err}");
        assert!(Links::from_kea_file(&dir.path().join("missing.json")).is_err());
    }
}
