//! Tables that fit the terminal: a table whose lines are wider than the terminal leaves
//! out its least needed columns, one at a time, until it fits (or only the needed ones
//! are left). Output that is not a terminal (a pipe, a file) keeps every column.

use comfy_table::{Table, presets};

/// A column: its header, and how much it is needed (0: always shown; higher: left out
/// sooner).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub header: &'static str,
    pub drop_order: u8,
}

pub(crate) const fn col(header: &'static str, drop_order: u8) -> Column {
    Column { header, drop_order }
}

/// The terminal's width in columns if stdout is one: `COLUMNS` if set, else the
/// terminal's own word.
pub(crate) fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&c: &usize| c > 0) {
        return Some(c);
    }
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills it for a terminal's fd.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 1 is open (stdout), and ws is a valid winsize to write into.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// The table of `rows` under `columns`, as wide as `width` allows: columns are left out
/// in their drop order until every line fits.
pub(crate) fn fitted(columns: &[Column], rows: &[Vec<String>], width: Option<usize>) -> Table {
    let mut shown: Vec<usize> = (0..columns.len()).collect();
    loop {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.set_header(shown.iter().map(|&i| columns[i].header));
        for r in rows {
            t.add_row(shown.iter().map(|&i| r.get(i).cloned().unwrap_or_default()));
        }
        let fits = width.is_none_or(|w| t.lines().all(|l| l.chars().count() <= w));
        let next = shown.iter().enumerate().filter(|&(_, &i)| columns[i].drop_order > 0).max_by_key(|&(at, &i)| {
            // The highest drop order goes first; of equals, the rightmost.
            (columns[i].drop_order, at)
        });
        match (fits, next) {
            (false, Some((at, _))) => {
                shown.remove(at);
            }
            _ => return t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_go_in_their_order_until_the_table_fits() {
        let columns = [col("name", 0), col("address", 1), col("labels", 3), col("version", 2)];
        let rows = vec![vec!["pi3".into(), "198.18.0.12:4877".into(), "gpu,ffmpeg,big".into(), "0.1.0".into()]];
        let all = fitted(&columns, &rows, None).to_string();
        assert!(all.contains("labels") && all.contains("version"), "a pipe gets every column");
        let width = |t: &Table| t.lines().map(|l| l.chars().count()).max().unwrap();
        let full = width(&fitted(&columns, &rows, None));
        let narrower = fitted(&columns, &rows, Some(full - 1)).to_string();
        assert!(!narrower.contains("labels") && narrower.contains("version"), "{narrower}");
        let narrowest = fitted(&columns, &rows, Some(10)).to_string();
        assert!(narrowest.contains("name") && !narrowest.contains("address"), "only what is always shown");
        assert!(narrowest.contains("pi3"));
    }
}
