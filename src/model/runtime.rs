//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! Nothing is downloaded at build time: the library is found, in order, at `ORT_DYLIB_PATH`,
//! in a project-local `.ort/` folder (in the working directory or above the binary), next to the
//! binary, in the usual system library folders, and last inside the `onnxruntime` Python package.

use std::path::{Path, PathBuf};
use std::process::Command;

const LIB_NAME: &str = "libonnxruntime.so";

/// The one line printed when no library is found.
const HOW_TO_GET_IT: &str = "ONNX Runtime library not found: run scripts/fetch-onnxruntime.sh (puts it in .ort/), \
     or `pip install onnxruntime`, or set ORT_DYLIB_PATH to libonnxruntime.so";

/// Where the library was found, and how.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub path: PathBuf,
    pub how: &'static str,
}

/// Finds the library; `explicit` is `ORT_DYLIB_PATH` when set.
pub fn discover(explicit: Option<&Path>) -> Result<Discovered, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let places = Places {
        cwd: std::env::current_dir().ok(),
        exe_dir,
        system: ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"]
            .map(PathBuf::from)
            .to_vec(),
        python_package: python_package_dir,
    };
    places.discover(explicit)
}

/// Where to look, in order; a value so the order can be tested with folders of a test's own.
struct Places {
    cwd: Option<PathBuf>,
    exe_dir: Option<PathBuf>,
    system: Vec<PathBuf>,
    /// The `onnxruntime/capi` folder of an installed Python package, asked for last because it
    /// starts a Python.
    python_package: fn() -> Option<PathBuf>,
}

impl Places {
    fn discover(&self, explicit: Option<&Path>) -> Result<Discovered, String> {
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
        let mut local: Vec<PathBuf> = self.cwd.iter().map(|d| d.join(".ort")).collect();
        if let Some(dir) = &self.exe_dir {
            // target/{debug,release}/chaos-inference finds the checkout's .ort/ from any directory.
            local.extend(dir.ancestors().take(4).map(|d| d.join(".ort")));
        }
        let beside: Vec<PathBuf> = self
            .exe_dir
            .iter()
            .flat_map(|d| [d.clone(), d.join("../lib")])
            .collect();
        let found = [
            (local, "project-local .ort/"),
            (beside, "next to the binary"),
            (self.system.clone(), "system library folder"),
        ]
        .into_iter()
        .find_map(|(dirs, how)| first_library_in(&dirs).map(|path| Discovered { path, how }));
        if let Some(found) = found {
            return Ok(found);
        }
        (self.python_package)()
            .and_then(|d| first_library_in(&[d]))
            .map(|path| Discovered {
                path,
                how: "onnxruntime Python package",
            })
            .ok_or_else(|| HOW_TO_GET_IT.to_string())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn library_in(dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"").unwrap();
        path
    }

    /// Every place in its order, in folders of the test's own, so it runs whatever the machine
    /// has installed.
    #[test]
    fn places_are_searched_in_order_and_none_says_how_to_get_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| root.path().join(name);
        let places = Places {
            cwd: Some(dir("cwd")),
            exe_dir: Some(dir("checkout/target/release")),
            system: vec![dir("usr-lib")],
            python_package: || None,
        };
        assert_eq!(places.discover(None).unwrap_err(), HOW_TO_GET_IT);
        let system = library_in(&dir("usr-lib"), "libonnxruntime.so.1.24.0");
        library_in(&dir("usr-lib"), "libonnxruntime.so.1.32.0");
        let found = places.discover(None).unwrap();
        assert_eq!(found.how, "system library folder");
        assert_eq!(
            found.path,
            dir("usr-lib/libonnxruntime.so.1.32.0"),
            "the newest"
        );
        let beside = library_in(&dir("checkout/target/release"), "libonnxruntime.so");
        assert_eq!(places.discover(None).unwrap().path, beside);
        let checkout = library_in(&dir("checkout/.ort"), "libonnxruntime.so");
        assert_eq!(places.discover(None).unwrap().path, checkout);
        let cwd = library_in(&dir("cwd/.ort"), "libonnxruntime.so");
        assert_eq!(places.discover(None).unwrap().path, cwd);
        assert_eq!(
            places.discover(Some(&system)).unwrap().how,
            "ORT_DYLIB_PATH"
        );
        let e = places.discover(Some(&dir("nope.so"))).unwrap_err();
        assert!(e.starts_with("ORT_DYLIB_PATH="), "{e}");
    }
}
