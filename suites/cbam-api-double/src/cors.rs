//! CORS per environment: permissive (`*`), restricted (a list) or strict
//! (the environment's own origin). Pure logic, so it is unit tested alone.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    Any,
    Listed(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub name: String,
    pub origins: Origins,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub credentials: bool,
    pub max_age: u32,
}

/// What to answer for a request that carries an Origin.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send these Access-Control-* headers.
    Allow(Vec<(&'static str, String)>),
    /// A foreign origin: no CORS headers (the browser blocks the response);
    /// a preflight is answered 403.
    Refuse,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl CorsPolicy {
    pub fn from_settings(
        name: &str,
        origins: &str,
        methods: &str,
        headers: &str,
        credentials: bool,
        max_age: u32,
    ) -> Result<Self, &'static str> {
        let listed = list(origins);
        let origins = match name {
            "permissive" => Origins::Any,
            "restricted" | "strict" if listed.iter().any(|o| o == "*") => {
                return Err("restricted and strict policies need listed origins, not *");
            }
            "restricted" | "strict" => Origins::Listed(listed),
            _ => return Err("expected permissive, restricted or strict"),
        };
        if origins == Origins::Any && credentials {
            return Err("credentials cannot be allowed for any origin");
        }
        Ok(CorsPolicy {
            name: name.to_owned(),
            origins,
            methods: list(methods).iter().map(|m| m.to_ascii_uppercase()).collect(),
            headers: list(headers),
            credentials,
            max_age,
        })
    }

    fn allows_origin(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::Listed(list) => list.iter().any(|o| o == origin),
        }
    }

    fn origin_headers(&self, origin: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.origins {
            Origins::Any => out.push(("access-control-allow-origin", "*".to_owned())),
            Origins::Listed(_) => {
                out.push(("access-control-allow-origin", origin.to_owned()));
                out.push(("vary", "Origin".to_owned()));
            }
        }
        if self.credentials {
            out.push(("access-control-allow-credentials", "true".to_owned()));
        }
        out
    }

    /// An ordinary request with an Origin header.
    pub fn simple(&self, origin: &str) -> Decision {
        if self.allows_origin(origin) { Decision::Allow(self.origin_headers(origin)) } else { Decision::Refuse }
    }

    /// A preflight (OPTIONS with Access-Control-Request-Method).
    pub fn preflight(&self, origin: &str, method: &str, request_headers: &str) -> Decision {
        let method_ok = self.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
        let headers_ok = self.headers.iter().any(|h| h == "*")
            || list(request_headers).iter().all(|h| self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)));
        if !(self.allows_origin(origin) && method_ok && headers_ok) {
            return Decision::Refuse;
        }
        let mut out = self.origin_headers(origin);
        out.push(("access-control-allow-methods", self.methods.join(", ")));
        let allowed_headers =
            if self.headers.iter().any(|h| h == "*") { request_headers.to_owned() } else { self.headers.join(", ") };
        if !allowed_headers.is_empty() {
            out.push(("access-control-allow-headers", allowed_headers));
        }
        out.push(("access-control-max-age", self.max_age.to_string()));
        Decision::Allow(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> CorsPolicy {
        CorsPolicy::from_settings(
            "strict",
            "https://cbam.greenlang.io",
            "GET,POST",
            "Authorization,Content-Type",
            true,
            600,
        )
        .expect("valid")
    }

    #[test]
    fn strict_echoes_its_origin_with_credentials() {
        let Decision::Allow(headers) = strict().simple("https://cbam.greenlang.io") else { panic!("refused") };
        assert!(headers.contains(&("access-control-allow-origin", "https://cbam.greenlang.io".to_owned())));
        assert!(headers.contains(&("access-control-allow-credentials", "true".to_owned())));
    }

    #[test]
    fn strict_refuses_a_foreign_origin_and_method() {
        assert_eq!(strict().simple("https://evil.example"), Decision::Refuse);
        assert_eq!(strict().preflight("https://cbam.greenlang.io", "DELETE", ""), Decision::Refuse);
        assert_eq!(strict().preflight("https://cbam.greenlang.io", "POST", "X-Custom"), Decision::Refuse);
    }

    #[test]
    fn permissive_answers_star_and_rejects_credentials() {
        let policy = CorsPolicy::from_settings("permissive", "*", "GET", "*", false, 60).expect("valid");
        let Decision::Allow(headers) = policy.simple("https://any.example") else { panic!("refused") };
        assert!(headers.contains(&("access-control-allow-origin", "*".to_owned())));
        assert!(CorsPolicy::from_settings("permissive", "*", "GET", "*", true, 60).is_err());
        assert!(CorsPolicy::from_settings("strict", "*", "GET", "*", false, 60).is_err());
    }
}
