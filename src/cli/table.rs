//! What a command prints: rows under named columns, shown as an aligned
//! table for people or as JSON objects for scripts.

use serde_json::{Map, Value};

/// Rows under named columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names; also the JSON keys.
    pub columns: Vec<&'static str>,
    /// One value per column in each row.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one value per column.
    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len(), "one value per column");
        self.rows.push(row);
    }

    /// The rows as JSON objects keyed by column.
    pub fn to_json(&self) -> Value {
        let mut rows = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let mut object = Map::new();
            for (column, value) in self.columns.iter().zip(row) {
                object.insert((*column).to_owned(), value.clone());
            }
            rows.push(Value::Object(object));
        }
        Value::Array(rows)
    }

    /// The rows aligned under upper-case headings.
    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
        for row in &cells {
            for (width, text) in widths.iter_mut().zip(row) {
                *width = (*width).max(text.chars().count());
            }
        }
        let mut out = String::new();
        let headings: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        line(&mut out, &headings, &widths);
        for row in &cells {
            line(&mut out, row, &widths);
        }
        out
    }
}

/// A value as a table cell: strings bare, nothing as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format!("{float:.2}"),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}

fn line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut text = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        text.push_str(cell);
        if i + 1 < cells.len() {
            text.push_str(&" ".repeat(width - cell.chars().count()));
        }
    }
    out.push_str(text.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_columns_and_reads_as_json() {
        let mut table = Table::new(&["queue", "waiting", "sl"]);
        table.push(vec![json!("support"), json!(3), json!(0.8123)]);
        table.push(vec![json!("sales-long-name"), json!(12), Value::Null]);
        assert_eq!(
            table.render(),
            "QUEUE            WAITING  SL\n\
             support          3        0.81\n\
             sales-long-name  12       -\n"
        );
        assert_eq!(
            table.to_json(),
            json!([
                {"queue": "support", "waiting": 3, "sl": 0.8123},
                {"queue": "sales-long-name", "waiting": 12, "sl": null},
            ])
        );
    }
}
