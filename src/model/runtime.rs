//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! Nothing is downloaded at build time: the library is found, in order, at `ORT_DYLIB_PATH`,
//! in a project-local `.ort/` folder (in the working directory or above the binary), next to the
//! binary, in the usual system library folders, and last inside the `onnxruntime` Python package.

use std::path::{Path, PathBuf};
use std::process::Command;

const LIB_NAME: &str = "libonnxruntime.so";

/// The one line printed when no library is found.
pub const HOW_TO_GET_IT: &str = "ONNX Runtime library not found: run scripts/fetch-onnxruntime.sh (puts it in .ort/), \
     or `pip install onnxruntime`, or set ORT_DYLIB_PATH to libonnxruntime.so";

/// Where the library was found, and how.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub path: PathBuf,
    pub how: &'static str,
}

/// Finds the library; `explicit` is `ORT_DYLIB_PATH` when set.
pub fn discover(explicit: Option<&Path>) -> Result<Discovered, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(Discovered {
                path: path.to_path_buf(),
                how: "ORT_DYLIB_PATH",
            })
        } else {
            Err(format!(
                "ORT_DYLIB_PATH={} is not a file; expected the path of libonnxruntime.so",
                path.display()
            ))
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let mut local: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        local.push(cwd.join(".ort"));
    }
    if let Some(dir) = &exe_dir {
        // target/{debug,release}/chaos-inference finds the checkout's .ort/ from any directory.
        local.extend(dir.ancestors().take(4).map(|d| d.join(".ort")));
    }
    if let Some(found) = first_library_in(&local) {
        return Ok(Discovered {
            path: found,
            how: "project-local .ort/",
        });
    }
    let mut beside: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &exe_dir {
        beside.push(dir.clone());
        beside.push(dir.join("../lib"));
    }
    if let Some(found) = first_library_in(&beside) {
        return Ok(Discovered {
            path: found,
            how: "next to the binary",
        });
    }
    let system = ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"].map(PathBuf::from);
    if let Some(found) = first_library_in(&system) {
        return Ok(Discovered {
            path: found,
            how: "system library folder",
        });
    }
    if let Some(found) = python_package_dir().and_then(|d| first_library_in(&[d])) {
        return Ok(Discovered {
            path: found,
            how: "onnxruntime Python package",
        });
    }
    Err(HOW_TO_GET_IT.to_string())
}

/// `libonnxruntime.so` or, failing that, the newest `libonnxruntime.so.X.Y.Z` in the first
/// folder that has one.
fn first_library_in(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().find_map(|dir| {
        let plain = dir.join(LIB_NAME);
        if plain.is_file() {
            return Some(plain);
        }
        let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{LIB_NAME}.")))
                    && p.is_file()
            })
            .collect();
        versioned.sort();
        versioned.pop()
    })
}

/// The `onnxruntime/capi` folder of the first Python that has the package.
fn python_package_dir() -> Option<PathBuf> {
    let program = "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))";
    ["python3", "python"].iter().find_map(|python| {
        let out = Command::new(python).args(["-c", program]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let dir = String::from_utf8(out.stdout).ok()?;
        Some(PathBuf::from(dir.trim()))
    })
}

/// Loads the library and creates the process's one ONNX Runtime environment.
pub fn init_environment(library: &Path) -> Result<ort::environment::Environment, String> {
    ort::init_from(library)
        .map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e} (expected libonnxruntime.so >= 1.24)",
                library.display()
            )
        })?
        .with_name("chaos-inference")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))
}
