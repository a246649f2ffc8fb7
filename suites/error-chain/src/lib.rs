//! "failed to X: Y: Z" from an error and its sources: the one error-chain
//! formatter of the harness, its tests and its small binaries (error
//! messages say what was being done, "read the cluster", and this adds the
//! "failed to"). No dependencies, so the static binaries use it too.

use std::error::Error;

pub fn render(err: &dyn Error) -> String {
    let mut text = format!("failed to {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    #[derive(Debug)]
    struct Step(&'static str, Option<Box<Step>>);

    impl fmt::Display for Step {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Step {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|s| s as _)
        }
    }

    #[test]
    fn says_what_failed_then_each_cause() {
        let err = Step("read the cluster", Some(Box::new(Step("connect", Some(Box::new(Step("refused", None)))))));
        assert_eq!(super::render(&err), "failed to read the cluster: connect: refused");
    }
}
