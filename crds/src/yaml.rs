//! The CRD YAML crdgen writes, readable alike by YAML 1.2 readers (serde_yaml) and the YAML 1.1
//! readers Kubernetes tools use (kubectl and Helm through sigs.k8s.io/yaml, PyYAML).
//!
//! serde_yaml writes YAML 1.2, where `Off`, `On`, `yes` and `no` are strings and need no quotes;
//! a YAML 1.1 reader takes the same bare words for booleans. Written bare, `default: Off` and
//! `enum: [Off, On]` become `false` and `true` for the API server, which refuses the CRD
//! (`default: Invalid value: "boolean"`) and, for an enum, would refuse every value a user writes.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::{Error, Result};

/// The plain scalars YAML 1.1 reads as booleans and YAML 1.2 as strings (serde_yaml quotes
/// the strings `true` and `false` itself: they are booleans in YAML 1.2 too).
const YAML11_BOOLEANS: [&str; 16] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
];

/// `crd` as YAML whose every string a YAML 1.1 reader also reads as a string.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String> {
    let plain = serde_yaml::to_string(crd).map_err(Error::CrdYaml)?;
    let quoted = quote_yaml11_booleans(&plain);
    // The quoting must not change what the document says: read back, it is the same CRD.
    let meant = serde_json::to_value(crd).map_err(|e| Error::CrdYamlMeaning(e.to_string()))?;
    let read: serde_json::Value = serde_yaml::from_str(&quoted).map_err(Error::CrdYaml)?;
    if read != meant {
        return Err(Error::CrdYamlMeaning(format!(
            "{} reads back as a different CRD after quoting",
            crd.metadata.name.as_deref().unwrap_or("a CRD")
        )));
    }
    Ok(quoted)
}

/// Single-quotes every bare mapping value or sequence item that YAML 1.1 reads as a boolean,
/// leaving the lines of block scalars (`|-` descriptions) as they are.
fn quote_yaml11_booleans(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 64);
    // The indentation of the key that opened a block scalar: deeper lines are its text.
    let mut block_indent: Option<usize> = None;
    for line in yaml.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = body.len() - body.trim_start().len();
        if let Some(opened) = block_indent {
            if body.trim().is_empty() || indent > opened {
                out.push_str(line);
                continue;
            }
            block_indent = None;
        }
        let value_start = scalar_value_start(body);
        let value = &body[value_start..];
        if value_start > 0 && YAML11_BOOLEANS.contains(&value) {
            out.push_str(&body[..value_start]);
            out.push('\'');
            out.push_str(value);
            out.push('\'');
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
        if ["|", "|-", "|+", ">", ">-", ">+"].contains(&value) {
            block_indent = Some(indent);
        }
    }
    out
}

/// Where the scalar of a `key: value` or `- value` line starts (0 when the line has none).
fn scalar_value_start(line: &str) -> usize {
    let mut start = line.len() - line.trim_start().len();
    while line[start..].starts_with("- ") {
        start += 2;
    }
    match line[start..].find(": ") {
        // A quoted key may hold ": "; serde_yaml quotes such keys, and their values are never
        // among the booleans, so the first separator is the one.
        Some(separator) => start + separator + 2,
        None if start > 0 && line[..start].trim_end().ends_with('-') => start,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_booleans_of_yaml11_are_quoted_as_values_and_items() {
        let yaml = "default: Off\nenum:\n- Off\n- On\n- Report\ntype: string\n";
        assert_eq!(
            quote_yaml11_booleans(yaml),
            "default: 'Off'\nenum:\n- 'Off'\n- 'On'\n- Report\ntype: string\n"
        );
    }

    #[test]
    fn block_scalar_text_is_left_as_written() {
        let yaml = "description: |-\n  Off: nothing.\n  - On\nenum:\n- On\n";
        assert_eq!(
            quote_yaml11_booleans(yaml),
            "description: |-\n  Off: nothing.\n  - On\nenum:\n- 'On'\n"
        );
    }

    #[test]
    fn every_crd_reads_back_as_itself() {
        for crd in crate::crds() {
            let yaml = crd_yaml(&crd).unwrap();
            assert!(!yaml.contains(": Off\n") && !yaml.contains("- On\n"), "{yaml}");
        }
    }
}
