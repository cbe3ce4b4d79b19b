//! Plain-text tables and unicode bars for the terminal.

/// A table: a header and rows of cells; numbers are right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let numeric = |c: &str| {
            if c == "-" {
                return true;
            }
            let t = c.trim_end_matches('%').replace([',', '.', '-', ' '], "");
            !t.is_empty() && t.chars().all(|ch| ch.is_ascii_digit())
        };
        let line = |cells: &[String], out: &mut String| {
            let mut parts = Vec::new();
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = w - c.chars().count();
                if numeric(c) {
                    parts.push(format!("{}{c}", " ".repeat(pad)));
                } else if i + 1 == cols {
                    parts.push(c.to_string());
                } else {
                    parts.push(format!("{c}{}", " ".repeat(pad)));
                }
            }
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        let mut out = String::new();
        line(&self.header, &mut out);
        let rule: Vec<String> = width.iter().map(|w| "─".repeat(*w)).collect();
        line(&rule, &mut out);
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A horizontal bar of `value` scaled so that `max` fills `width` cells, in
/// eighths of a cell.
pub fn bar(value: f64, max: f64, width: usize) -> String {
    if max <= 0.0 || value <= 0.0 {
        return String::new();
    }
    let eighths = ((value / max).min(1.0) * (width * 8) as f64).round() as usize;
    let eighths = eighths.max(1);
    let mut s = "█".repeat(eighths / 8);
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PARTS[eighths % 8]);
    s
}

/// Minor units as major units with thousands separators: 2400000 -> "24,000".
pub fn money(minor: i64) -> String {
    let major = minor / 100;
    let digits = major.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if major < 0 { format!("-{out}") } else { out }
}

/// A ratio as a percentage, or "-" when undefined.
pub fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10.0, 10.0, 4), "████");
        assert_eq!(bar(5.0, 10.0, 4), "██");
        assert_eq!(bar(1.0, 16.0, 2), "▏");
        assert_eq!(bar(0.0, 10.0, 4), "");
    }

    #[test]
    fn money_has_separators() {
        assert_eq!(money(2_400_000), "24,000");
        assert_eq!(money(12_345_678_900), "123,456,789");
        assert_eq!(money(-100_000), "-1,000");
    }
}
