//! Method + path patterns that name what a request does: admin changes (users, roles, DICOM
//! nodes, server control) and share-link creation, for the `admin_change` and `sharing_spike`
//! rules (CONTRACT §2). The tables are configuration (`HttpConfig.admin_patterns`,
//! `share_patterns`); the defaults cover Orthanc, Keycloak and dcm4chee-arc.
//!
//! A path glob is matched segment by segment against the normalised path (`url::segments`):
//! `*` inside a segment matches any characters of that segment, a `**` segment matches any
//! number of segments (none included). Literal parts compare ASCII case-insensitively. The
//! first matching pattern wins, so specific entries go before catch-alls.

use std::borrow::Cow;

/// One table entry: requests whose method is one of `method` (`|`-separated, `*` = any) and
/// whose path matches `path_glob` are `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPattern {
    pub method: String,
    pub path_glob: String,
    pub action: String,
}

impl AdminPattern {
    pub fn new(method: &str, path_glob: &str, action: &str) -> Self {
        AdminPattern {
            method: method.into(),
            path_glob: path_glob.into(),
            action: action.into(),
        }
    }

    /// Whether a request with this method and normalised path matches.
    pub fn matches(&self, method: &str, segs: &[Cow<'_, str>]) -> bool {
        // Byte-wise: this runs for every pattern of every request.
        let method_ok = self
            .method
            .as_bytes()
            .split(|&b| b == b'|')
            .map(<[u8]>::trim_ascii)
            .any(|m| m == b"*" || m.eq_ignore_ascii_case(method.as_bytes()));
        method_ok && path_matches(&self.path_glob, segs)
    }
}

/// The action of the first pattern matching, if any.
pub fn find_action<'p>(patterns: &'p [AdminPattern], method: &str, segs: &[Cow<'_, str>]) -> Option<&'p str> {
    patterns
        .iter()
        .find(|p| p.matches(method, segs))
        .map(|p| p.action.as_str())
}

/// Greedy wildcard matching with one backtrack point (the classic linear-space algorithm):
/// `star(p)` says whether pattern item `p` is the wildcard, `eq(p, t)` whether it matches text
/// item `t`. O(|pattern| × |text|) at worst, never exponential.
fn wildcard<P, T>(pat: &[P], text: &[T], star: impl Fn(&P) -> bool, eq: impl Fn(&P, &T) -> bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pat.get(p), text.get(t)) {
            (Some(pi), _) if star(pi) => {
                back = Some((p, t));
                p += 1;
            }
            (Some(pi), Some(ti)) if eq(pi, ti) => {
                p += 1;
                t += 1;
            }
            _ => match back {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    back = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pat.get(p..).unwrap_or_default().iter().all(star)
}

/// One segment against a segment glob (`*` = any run of characters).
pub fn segment_matches(glob: &str, seg: &str) -> bool {
    wildcard(
        glob.as_bytes(),
        seg.as_bytes(),
        |c| *c == b'*',
        |a, b| a.eq_ignore_ascii_case(b),
    )
}

/// A normalised path against a path glob.
pub fn path_matches(glob: &str, segs: &[Cow<'_, str>]) -> bool {
    let pat: Vec<&str> = glob.split('/').filter(|s| !s.is_empty()).collect();
    wildcard(&pat, segs, |p| *p == "**", |p, s| segment_matches(p, s))
}

/// The built-in admin table.
///
/// - Orthanc REST API (book.orthanc-server.com, "REST API of Orthanc"): DICOM modality and
///   peer configuration (`PUT|DELETE /modalities/{id}`, `/peers/{id}`), server control
///   (`POST /tools/reset`, `/tools/shutdown`, `/tools/execute-script` runs Lua on the server),
///   and settings (`PUT /tools/log-level`, `/tools/accepted-transfer-syntaxes`, …).
/// - Keycloak Admin REST API (`/admin/realms/{realm}/…`, `/auth/admin/…` before Keycloak 17):
///   users, passwords, role mappings, groups, roles, clients; anything else writing under a
///   realm is a generic admin change.
/// - dcm4chee-arc configuration (`/dcm4chee-arc/devices/{device}`, `/dcm4chee-arc/aets/{aet}`,
///   `/dcm4chee-arc/unique/…`, `/dcm4chee-arc/hl7apps/…`, `POST /dcm4chee-arc/ctrl/reload`).
///   `aets/*` is one segment: `/aets/{aet}/rs/…` is DICOMweb, not configuration.
pub fn default_admin_patterns() -> Vec<AdminPattern> {
    const W: &str = "POST|PUT|DELETE|PATCH";
    [
        ("PUT|DELETE|POST", "**/modalities/*", "orthanc_modality_config"),
        ("PUT|DELETE|POST", "**/peers/*", "orthanc_peer_config"),
        ("POST", "**/tools/reset", "orthanc_reset"),
        ("POST", "**/tools/shutdown", "orthanc_shutdown"),
        ("POST", "**/tools/execute-script", "orthanc_execute_script"),
        ("PUT", "**/tools/*", "orthanc_settings_change"),
        ("POST", "**/admin/realms/*/users", "keycloak_user_create"),
        (
            "PUT",
            "**/admin/realms/*/users/*/reset-password",
            "keycloak_password_reset",
        ),
        (W, "**/admin/realms/*/users/*/role-mappings/**", "keycloak_role_mapping"),
        (
            "PUT|DELETE",
            "**/admin/realms/*/users/*/groups/*",
            "keycloak_group_membership",
        ),
        ("PUT", "**/admin/realms/*/users/*", "keycloak_user_update"),
        ("DELETE", "**/admin/realms/*/users/*", "keycloak_user_delete"),
        (W, "**/admin/realms/*/roles/**", "keycloak_role_change"),
        (W, "**/admin/realms/*/roles-by-id/**", "keycloak_role_change"),
        (W, "**/admin/realms/*/groups/**", "keycloak_group_change"),
        (W, "**/admin/realms/*/clients/**", "keycloak_client_change"),
        (W, "**/admin/realms/**", "keycloak_admin_change"),
        (W, "**/dcm4chee-arc/devices/**", "dcm4chee_device_config"),
        (W, "**/dcm4chee-arc/aets/*", "dcm4chee_ae_config"),
        (W, "**/dcm4chee-arc/unique/**", "dcm4chee_ae_config"),
        (W, "**/dcm4chee-arc/hl7apps/**", "dcm4chee_hl7app_config"),
        ("POST", "**/dcm4chee-arc/ctrl/reload", "dcm4chee_config_reload"),
    ]
    .into_iter()
    .map(|(m, g, a)| AdminPattern::new(m, g, a))
    .collect()
}

/// Action name of the built-in share table.
pub const SHARE_LINK_CREATED: &str = "share_link_created";

/// The built-in share table: POSTs creating share links in web viewers and portals
/// (`…/share`, `…/shares`, `…/share-links`, `…/links`), and the Orthanc authorization plugin's
/// token route (`POST /auth/tokens/{type}`: `viewer-instant-link`, `download-instant-link`,
/// `…-publication`), which is how Orthanc Explorer 2 shares a study.
pub fn default_share_patterns() -> Vec<AdminPattern> {
    ["**/share*", "**/links", "**/auth/tokens/*"]
        .into_iter()
        .map(|g| AdminPattern::new("POST", g, SHARE_LINK_CREATED))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::url::segments;

    fn admin(method: &str, path: &str) -> Option<String> {
        find_action(&default_admin_patterns(), method, &segments(path)).map(str::to_string)
    }

    #[test]
    fn globs() {
        fn s(p: &str) -> Vec<Cow<'_, str>> {
            segments(p)
        }
        assert!(path_matches("/a/*/c", &s("/a/b/c")));
        assert!(!path_matches("/a/*/c", &s("/a/c")));
        assert!(path_matches("**/c", &s("/c")));
        assert!(path_matches("**/c", &s("/x/y/c")));
        assert!(!path_matches("**/c", &s("/x/y/c/d")));
        assert!(path_matches("/a/**", &s("/a")));
        assert!(path_matches("/a/**/z", &s("/a/b/c/z")));
        assert!(path_matches("**", &s("/")));
        assert!(path_matches("**/share*", &s("/api/Share-Links")));
        assert!(!path_matches("**/share*", &s("/api/reshare")));
        assert!(segment_matches("*a*b*", "xxaybzz"));
        assert!(!segment_matches("*a*b", "xxaybzz"));
        assert!(segment_matches("", ""));
        // Pathological patterns stay polynomial.
        let long = "a".repeat(5000);
        assert!(!segment_matches("*a*a*a*a*a*a*a*a*b", &long));
        let path = "/a".repeat(64);
        let many = segments(&path);
        assert!(!path_matches("**/a/**/a/**/a/**/b", &many));
    }

    #[test]
    fn method_lists() {
        let p = AdminPattern::new(" PUT | delete ", "/x", "a");
        assert!(p.matches("PUT", &segments("/x")));
        assert!(p.matches("DELETE", &segments("/x")));
        assert!(!p.matches("GET", &segments("/x")));
        assert!(AdminPattern::new("*", "/x", "a").matches("GET", &segments("/x/")));
    }

    #[test]
    fn orthanc() {
        assert_eq!(
            admin("PUT", "/modalities/ROUTER").as_deref(),
            Some("orthanc_modality_config")
        );
        assert_eq!(
            admin("DELETE", "/orthanc/peers/remote").as_deref(),
            Some("orthanc_peer_config")
        );
        assert_eq!(admin("POST", "/tools/reset").as_deref(), Some("orthanc_reset"));
        assert_eq!(
            admin("POST", "//tools/./%73hutdown").as_deref(),
            Some("orthanc_shutdown")
        );
        assert_eq!(
            admin("PUT", "/tools/log-level").as_deref(),
            Some("orthanc_settings_change")
        );
        // Operations and reads are not configuration changes.
        assert_eq!(admin("POST", "/modalities/ROUTER/store"), None);
        assert_eq!(admin("GET", "/modalities/ROUTER"), None);
        assert_eq!(admin("POST", "/tools/find"), None);
    }

    #[test]
    fn keycloak() {
        assert_eq!(
            admin("POST", "/admin/realms/pacs/users").as_deref(),
            Some("keycloak_user_create")
        );
        assert_eq!(
            admin("POST", "/auth/admin/realms/pacs/users").as_deref(),
            Some("keycloak_user_create")
        );
        assert_eq!(
            admin("POST", "/admin/realms/pacs/users/0b6c/role-mappings/realm").as_deref(),
            Some("keycloak_role_mapping")
        );
        assert_eq!(
            admin("POST", "/admin/realms/pacs/users/0b6c/role-mappings/clients/9f1e").as_deref(),
            Some("keycloak_role_mapping")
        );
        assert_eq!(
            admin("PUT", "/admin/realms/pacs/users/0b6c").as_deref(),
            Some("keycloak_user_update")
        );
        assert_eq!(
            admin("PUT", "/admin/realms/pacs/users/0b6c/reset-password").as_deref(),
            Some("keycloak_password_reset")
        );
        assert_eq!(
            admin("PUT", "/admin/realms/pacs/users/0b6c/groups/77").as_deref(),
            Some("keycloak_group_membership")
        );
        assert_eq!(
            admin("DELETE", "/admin/realms/pacs/users/0b6c").as_deref(),
            Some("keycloak_user_delete")
        );
        assert_eq!(
            admin("POST", "/admin/realms/pacs/roles").as_deref(),
            Some("keycloak_role_change")
        );
        assert_eq!(
            admin("PUT", "/admin/realms/pacs").as_deref(),
            Some("keycloak_admin_change")
        );
        assert_eq!(admin("GET", "/admin/realms/pacs/users"), None);
        // Logins are not admin actions.
        assert_eq!(admin("POST", "/realms/pacs/protocol/openid-connect/token"), None);
    }

    #[test]
    fn dcm4chee() {
        assert_eq!(
            admin("PUT", "/dcm4chee-arc/devices/dcm4chee-arc").as_deref(),
            Some("dcm4chee_device_config")
        );
        assert_eq!(
            admin("POST", "/dcm4chee-arc/aets/NEWAE").as_deref(),
            Some("dcm4chee_ae_config")
        );
        assert_eq!(
            admin("DELETE", "/dcm4chee-arc/unique/aets/OLD").as_deref(),
            Some("dcm4chee_ae_config")
        );
        // STOW-RS under an AE is not configuration.
        assert_eq!(admin("POST", "/dcm4chee-arc/aets/DCM4CHEE/rs/studies"), None);
    }

    #[test]
    fn shares() {
        let t = default_share_patterns();
        let f = |m: &str, p: &str| find_action(&t, m, &segments(p)).map(str::to_string);
        assert_eq!(f("POST", "/api/studies/1/share").as_deref(), Some("share_link_created"));
        assert_eq!(f("POST", "/api/shares").as_deref(), Some("share_link_created"));
        assert_eq!(f("POST", "/portal/links").as_deref(), Some("share_link_created"));
        assert_eq!(
            f("POST", "/auth/tokens/viewer-instant-link").as_deref(),
            Some("share_link_created")
        );
        assert_eq!(f("GET", "/api/shares"), None);
        assert_eq!(f("POST", "/api/shares/1/revoke"), None);
    }
}
