//! Where `qualifyctl`'s bearer token comes from, in this order: `--token`
//! (`QUALIFY_TOKEN`), `--token-file` (`QUALIFY_TOKEN_FILE`, read on each run,
//! so a token refreshed by another tool is picked up), `--token-exec`
//! (`QUALIFY_TOKEN_EXEC`: a credential helper run once per invocation, the
//! kubectl pattern, printing the token or a Kubernetes `ExecCredential` whose
//! `status.token` is used); without any, the caller mints a development token.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::Global;

/// The token the options name, fetched at most once per run; `None` when none is named.
pub fn token(g: &Global) -> anyhow::Result<Option<String>> {
    static FETCHED: OnceLock<Option<String>> = OnceLock::new();
    if let Some(t) = FETCHED.get() {
        return Ok(t.clone());
    }
    let t = fetch(g)?;
    Ok(FETCHED.get_or_init(|| t).clone())
}

fn fetch(g: &Global) -> anyhow::Result<Option<String>> {
    if let Some(t) = g.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    if let Some(path) = &g.token_file {
        return from_file(path).map(Some);
    }
    if let Some(cmd) = g.token_exec.as_deref().filter(|c| !c.trim().is_empty()) {
        return exec(cmd).map(Some);
    }
    Ok(None)
}

fn nonempty(t: &str, from: &str) -> anyhow::Result<String> {
    let t = t.trim();
    if t.is_empty() {
        bail!("{from} gave an empty token");
    }
    Ok(t.to_string())
}

fn from_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--token-file {}", path.display()))?;
    nonempty(&text, &format!("--token-file {}", path.display()))
}

/// Runs the helper with `sh -c`; its stdout is a token or an `ExecCredential`.
fn exec(cmd: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("--token-exec {cmd:?} could not run"))?;
    if !out.status.success() {
        bail!("--token-exec {cmd:?} failed ({})", out.status);
    }
    let stdout = String::from_utf8(out.stdout).context("--token-exec printed something that is not UTF-8")?;
    if stdout.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&stdout).context("--token-exec printed JSON that does not parse")?;
        let token = v["status"]["token"].as_str().with_context(|| {
            format!("--token-exec printed JSON without status.token (an ExecCredential has it; kind: {})", v["kind"])
        })?;
        return nonempty(token, "--token-exec");
    }
    nonempty(&stdout, "--token-exec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_prints_a_token_or_an_exec_credential() {
        assert_eq!(exec("echo ' abc.def.ghi '").unwrap(), "abc.def.ghi");
        let cred = r#"printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t.o.k"}}'"#;
        assert_eq!(exec(cred).unwrap(), "t.o.k");
        assert!(exec("exit 3").unwrap_err().to_string().contains("failed"));
        assert!(exec("echo '{\"kind\":\"ExecCredential\"}'").unwrap_err().to_string().contains("status.token"));
        assert!(exec("true").unwrap_err().to_string().contains("empty"));
    }
}
