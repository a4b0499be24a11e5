//! Writes the kubefim CustomResourceDefinitions as YAML, one file per kind, into the chart
//! (default `charts/kubefim/crds`), or to stdout with `-`.

use std::{fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "charts/kubefim/crds".to_string());
    for crd in kubefim_crds::crds() {
        let yaml = kubefim_crds::yaml::crd_yaml(&crd)?;
        if target == "-" {
            print!("---\n{yaml}");
            continue;
        }
        let path = PathBuf::from(&target).join(format!("{}.yaml", crd.spec.names.plural));
        fs::write(&path, yaml)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
