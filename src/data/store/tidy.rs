//! Removing the temp files (`.<name>.<pid>.tmp`) that a killed write leaves behind. A temp file
//! is removed only when the process that wrote it is gone: a live writer's file (another
//! process's, or another thread's of this one) is never touched.

use super::Scan;
use std::path::Path;

pub(super) fn remove_orphans(dir: &Path, scan: &mut Scan) {
    let (notes, problems) = crate::paths::remove_orphan_tmps(dir);
    scan.notes.extend(notes);
    scan.problems.extend(problems);
}
