//! Man pages, generated so that nothing is written twice: anygate(8) and anygate-ctl(8) from
//! the clap definitions (clap_mangen, plus one section per subcommand with its synopsis and
//! options), anygate.toml(5) from the README's *Configuration* section, which is the one
//! reference of every key. `anygate man DIR` writes them; scripts/package runs it.
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use std::path::{Path, PathBuf};

/// The README, whose `## Configuration` section becomes anygate.toml(5).
const README: &str = include_str!("../README.md");
const MANUAL: &str = "anygate manual";

/// Writes anygate.8, anygate-ctl.8 and anygate.toml.5 into `dir`; returns their paths.
pub fn write_all(dir: &Path, cli: clap::Command) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let cli = cli.bin_name("anygate");
    let ctl = cli
        .find_subcommand("ctl")
        .cloned()
        .ok_or_else(|| std::io::Error::other("no ctl subcommand"))?;
    let pages = [
        (
            "anygate.8",
            command_page(
                cli.clone(),
                "anygate",
                "anygate",
                &[("ctl", "anygate-ctl(8)")],
            ),
        ),
        (
            "anygate-ctl.8",
            command_page(ctl, "anygate-ctl", "anygate ctl", &[]),
        ),
        ("anygate.toml.5", config_page(README)?),
    ];
    let mut out = Vec::new();
    for (name, text) in pages {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        out.push(p);
    }
    Ok(out)
}

/// A command's page: clap_mangen's title, name, synopsis, description and options, then a
/// COMMANDS section with each visible subcommand (recursively): its synopsis, help and
/// options. `elsewhere` names subcommands documented in a page of their own.
fn command_page(
    cmd: clap::Command,
    title: &'static str,
    path: &str,
    elsewhere: &[(&str, &str)],
) -> String {
    let version = cmd.get_version().unwrap_or("").to_owned();
    let mut cmd = cmd.name(title).bin_name(path);
    cmd.build();
    let man = Man::new(cmd.clone())
        .title(title.to_uppercase())
        .section("8")
        .source(format!("anygate {version}"))
        .manual(MANUAL);
    let mut out = Vec::new();
    /// One of clap_mangen's section renderers.
    type Part = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;
    let parts: [Part; 4] = [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
    ];
    for render in parts {
        render(&man, &mut out).expect("writing to a Vec");
    }
    if cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && !a.is_positional())
    {
        man.render_options_section(&mut out)
            .expect("writing to a Vec");
    }
    let mut page = PREAMBLE.to_owned() + &strip_preambles(&String::from_utf8_lossy(&out));
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| shown(s)) {
        subcommand(&mut page, sub, path, elsewhere);
    }
    page.push_str(&see_also(title));
    page
}

fn subcommand(page: &mut String, sub: &clap::Command, parent: &str, elsewhere: &[(&str, &str)]) {
    let path = format!("{parent} {}", sub.get_name());
    if let Some((_, see)) = elsewhere.iter().find(|(n, _)| *n == sub.get_name()) {
        let mut r = Roff::new();
        r.control("SS", [path.as_str()]);
        r.text(about_of(sub));
        r.text([roman(". See "), bold(*see), roman(".")]);
        page.push_str(&strip_preambles(&r.render()));
        return;
    }
    // Global options (--socket, --config, --json) and --help are described once, above.
    let leaf = sub.clone().bin_name(path.clone()).mut_args(|a| {
        let repeated = a.is_global_set() || a.get_id() == "help";
        a.hide(repeated)
    });
    let man = Man::new(leaf.clone());
    let mut r = Roff::new();
    r.control("SS", [path.as_str()]);
    page.push_str(&strip_preambles(&r.render()));
    let mut out = Vec::new();
    man.render_synopsis_section(&mut out)
        .expect("writing to a Vec");
    man.render_description_section(&mut out)
        .expect("writing to a Vec");
    if leaf
        .get_arguments()
        .any(|a| !a.is_hide_set() && !a.is_positional())
    {
        man.render_options_section(&mut out)
            .expect("writing to a Vec");
    }
    // Within a command's subsection: paragraphs instead of section headings.
    for line in strip_preambles(&String::from_utf8_lossy(&out)).lines() {
        match line {
            ".SH SYNOPSIS" => {}
            ".SH DESCRIPTION" | ".SH OPTIONS" => page.push_str(".PP\n"),
            l => {
                page.push_str(l);
                page.push('\n');
            }
        }
    }
    for s in sub.get_subcommands().filter(|s| shown(s)) {
        subcommand(page, s, &path, elsewhere);
    }
}

/// Visible subcommands, less clap's own `help`.
fn shown(c: &clap::Command) -> bool {
    !c.is_hide_set() && c.get_name() != "help"
}

fn about_of(c: &clap::Command) -> Vec<Inline> {
    vec![roman(
        c.get_about().map(|a| a.to_string()).unwrap_or_default(),
    )]
}

const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Every render of clap_mangen and roff starts with the same apostrophe preamble; one, at
/// the top of the page, is enough.
fn strip_preambles(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn see_also(this: &str) -> String {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    let pages = [
        ("anygate", "8"),
        ("anygate-ctl", "8"),
        ("anygate.toml", "5"),
        ("systemctl", "1"),
    ];
    let mut line = Vec::new();
    for (name, sec) in pages.iter().filter(|(n, _)| *n != this) {
        if !line.is_empty() {
            line.push(roman(", "));
        }
        line.push(bold(*name));
        line.push(roman(format!("({sec})")));
    }
    r.text(line);
    r.control("PP", []);
    r.text([
        roman("The README and docs/bare-metal.md of the source, installed under "),
        italic("/usr/share/doc/anygate/"),
        roman("."),
    ]);
    strip_preambles(&r.render())
}

/// anygate.toml(5): the README's `## Configuration` section, converted from its small
/// Markdown subset (### headings, paragraphs, `- ` lists, key tables, inline code and
/// emphasis). A table row becomes a tagged paragraph: the key, its type and default, then
/// what it means.
pub fn config_page(readme: &str) -> std::io::Result<String> {
    let section = markdown_section(readme, "## Configuration").ok_or_else(|| {
        std::io::Error::other("README.md has no `## Configuration` section for anygate.toml(5)")
    })?;
    let version = env!("CARGO_PKG_VERSION");
    let mut r = Roff::new();
    r.control(
        "TH",
        [
            "ANYGATE.TOML",
            "5",
            "",
            &format!("anygate {version}"),
            MANUAL,
        ],
    );
    r.control("SH", ["NAME"]);
    r.text([roman("anygate.toml - the configuration file of anygate(8)")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        italic("/etc/anygate/anygate.toml"),
        roman(", read by "),
        bold("anygate run --config"),
        roman(" and "),
        bold("anygate check --config"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    markdown(&mut r, section);
    let mut page = r.render();
    page.push_str(&see_also("anygate.toml"));
    Ok(page)
}

/// The text under `heading` up to the next heading of the same level.
fn markdown_section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let from = doc.find(&format!("\n{heading}\n"))? + heading.len() + 2;
    let body = &doc[from..];
    Some(&body[..body.find("\n## ").map_or(body.len(), |e| e + 1)])
}

fn markdown(r: &mut Roff, text: &str) {
    let mut para: Vec<&str> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let flush = |r: &mut Roff, para: &mut Vec<&str>| {
        if !para.is_empty() {
            r.control("PP", []);
            r.text(inline(&para.join(" ")));
            para.clear();
        }
    };
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let l = line.trim_end();
        if let Some(h) = l.strip_prefix("### ") {
            flush(r, &mut para);
            r.control("SS", [h.replace('`', "").as_str()]);
        } else if l.starts_with('|') {
            flush(r, &mut para);
            let cells = table_cells(l);
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ' '))
            {
                continue;
            }
            match &header {
                None => header = Some(cells),
                Some(_) => table_row(r, &cells),
            }
        } else if let Some(item) = l.strip_prefix("- ") {
            flush(r, &mut para);
            let mut item = item.to_owned();
            while let Some(next) = lines.peek().and_then(|n| n.strip_prefix("  ")) {
                item.push(' ');
                item.push_str(next.trim());
                lines.next();
            }
            r.control("IP", ["\\(bu", "2"]);
            r.text(inline(&item));
        } else if l.is_empty() {
            flush(r, &mut para);
            header = None;
        } else {
            para.push(l);
        }
    }
    flush(r, &mut para);
}

/// The cells of `| a | b \| c |`, with `\|` kept as a literal bar.
fn table_cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    let mut cells: Vec<String> = cells.into_iter().map(|c| c.trim().to_owned()).collect();
    if cells.last().is_some_and(|c| c.is_empty()) {
        cells.pop();
    }
    cells
}

/// `| key | type, default | meaning |` as `.TP`, the key in bold, the type after it.
fn table_row(r: &mut Roff, cells: &[String]) {
    let Some((key, rest)) = cells.split_first() else {
        return;
    };
    r.control("TP", []);
    let mut tag = inline(key);
    if rest.len() > 1 {
        tag.push(roman(format!(" ({})", plain(&rest[0]))));
    }
    r.text(tag);
    let meaning = rest.last().map(String::as_str).unwrap_or("");
    r.text(inline(meaning));
}

/// Markdown emphasis and code removed, for text inside the parentheses of a tag.
fn plain(s: &str) -> String {
    s.replace(['`', '*'], "")
}

/// `code` and **strong** in bold, *emphasis* in italics, the rest roman.
fn inline(s: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let next = rest.find(['`', '*']).unwrap_or(rest.len());
        if next > 0 {
            out.push(roman(&rest[..next]));
            rest = &rest[next..];
            continue;
        }
        let (open, make): (&str, fn(String) -> Inline) = if rest.starts_with('`') {
            ("`", |t| bold(t))
        } else if rest.starts_with("**") {
            ("**", |t| bold(t))
        } else {
            ("*", |t| italic(t))
        };
        match rest[open.len()..].find(open) {
            Some(end) => {
                out.push(make(rest[open.len()..open.len() + end].to_owned()));
                rest = &rest[2 * open.len() + end..];
            }
            None => {
                out.push(roman(rest));
                rest = "";
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# x\n\n## Configuration\n\nTOML, *strictly*.\nSecond line.\n\n### `[node]`\n| key | type, default | meaning |\n| --- | --- | --- |\n| `region` | string, optional | one of `A` \\| `B`. |\n\n- a list\n  item\n\n## Next\nnot this\n";

    #[test]
    fn the_config_page_is_the_readme_section_and_nothing_else() {
        let page = config_page(DOC).unwrap();
        assert!(page.contains(".SS [node]\n"), "{page}");
        assert!(
            page.contains(".TP\n\\fBregion\\fR (string, optional)\n"),
            "{page}"
        );
        assert!(page.contains("one of \\fBA\\fR | \\fBB\\fR."), "{page}");
        assert!(
            page.contains("TOML, \\fIstrictly\\fR. Second line."),
            "{page}"
        );
        assert!(page.contains(".IP \\(bu 2\na list item\n"), "{page}");
        assert!(!page.contains("not this"), "{page}");
        assert!(config_page("# no such section\n").is_err());
    }

    #[test]
    fn the_real_readme_gives_every_config_table_a_subsection() {
        let page = config_page(README).unwrap();
        for t in [
            "[dpdk]",
            "[[ports]]",
            "[[workers]]",
            "[node]",
            "[[routes]]",
            "[firewall]",
        ] {
            assert!(page.contains(&format!(".SS {t}\n")), "{t} missing");
        }
        assert!(page.contains("\\fBcontrol_socket\\fR"));
    }

    #[test]
    fn cells_keep_escaped_bars() {
        assert_eq!(table_cells("| `a` | x \\| y | z |"), ["`a`", "x | y", "z"]);
    }
}
