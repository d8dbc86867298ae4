//! What the drills write: the summary over every run and each run's `.txt` and `.svg` timeline.

use super::analysis::Figure;
use super::*;

/// Per drill, every figure with its rule: each run's value, median and worst, and in how many
/// runs it broke its rule (any such run failed).
pub fn print_summary(drills: &[Drill], results: &BTreeMap<&str, Vec<Outcome>>) {
    println!(
        "\nsummary (every figure per drill with its rule; a figure over its rule fails the run):"
    );
    for d in drills {
        let Some(rs) = results.get(d.id) else {
            continue;
        };
        let runs: Vec<Vec<Figure>> = rs.iter().map(Outcome::figures).collect();
        let failed = rs.iter().filter(|o| !o.violations().is_empty()).count();
        println!(
            "drill {} ({}): {} of {} runs passed",
            d.id,
            d.title,
            rs.len() - failed,
            rs.len()
        );
        for (i, f) in runs[0].iter().enumerate() {
            let mut vals: Vec<u64> = runs
                .iter()
                .filter_map(|r| r.get(i))
                .map(|f| f.value)
                .collect();
            let per_run = vals
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            let broken = runs
                .iter()
                .filter(|r| r.get(i).is_some_and(Figure::broken))
                .count();
            vals.sort_unstable();
            let stats = if vals.len() > 1 {
                format!(
                    " (median {}, worst {})",
                    vals[vals.len() / 2],
                    vals[vals.len() - 1]
                )
            } else {
                String::new()
            };
            let verdict = match f.max {
                Some(_) if broken > 0 => format!("BROKEN in {broken} of {} runs", runs.len()),
                Some(_) => "held".to_string(),
                None => "-".to_string(),
            };
            println!(
                "    {:<52} {}: {per_run}{stats}  [{verdict}]",
                f.name, f.rule
            );
        }
    }
}

pub fn write_timeline(out: &Path, d: &Drill, rep: usize, tl: &Timeline, o: &Outcome) {
    let slots = tl.vip.len().max(1);
    let mut txt = String::new();
    let _ = writeln!(
        txt,
        "{}\nfault at slot {} ({} ms)",
        o.summary_line(d),
        tl.fault_slot,
        tl.fault_slot * 20
    );
    let _ = writeln!(txt, "legend: VIP 1=ha1 2=ha2 B=both .=none | down/up: o ok, X failed, C corrupt, u only on a stopped storage, k cut off by a killed storage, r served after a repeat on a new connection, ' ' no request");
    let row = |reqs: &[(usize, Req)]| {
        let mut v = vec![' '; slots];
        for &(s, r) in reqs {
            if s < slots {
                v[s] = match r {
                    Req::Ok => 'o',
                    Req::Failed => 'X',
                    Req::Corrupt => 'C',
                    Req::Unavailable => 'u',
                    Req::CutOff => 'k',
                    Req::Retried => 'r',
                };
            }
        }
        v
    };
    let vip: Vec<char> = tl
        .vip
        .iter()
        .map(|(a, b)| match (a, b) {
            (true, true) => 'B',
            (true, false) => '1',
            (false, true) => '2',
            _ => '.',
        })
        .collect();
    let (down, up) = (row(&tl.downloads), row(&tl.uploads));
    for chunk in (0..slots).step_by(100) {
        let end = (chunk + 100).min(slots);
        let _ = writeln!(
            txt,
            "{:>6} ms VIP  {}",
            chunk * 20,
            vip[chunk..end].iter().collect::<String>()
        );
        let _ = writeln!(
            txt,
            "          down {}",
            down[chunk..end].iter().collect::<String>()
        );
        let _ = writeln!(
            txt,
            "          up   {}",
            up[chunk..end].iter().collect::<String>()
        );
    }
    let base = out.join(format!("{}-{}", d.id, rep));
    let _ = std::fs::write(base.with_extension("txt"), txt);

    // SVG: three lanes, one 2-px column per slot.
    let w = slots * 2 + 120;
    let mut svg = format!("<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='130' font-family='monospace' font-size='11'>\n");
    let _ = writeln!(
        svg,
        "<text x='4' y='14'>drill {}: {} — gap {} ms</text>",
        d.id, d.title, o.gap_ms
    );
    for (lane, label) in ["VIP", "download", "upload"].iter().enumerate() {
        let _ = writeln!(svg, "<text x='4' y='{}'>{label}</text>", 42 + lane * 30);
    }
    let color_vip = |c: char| match c {
        '1' => "#4a90d9",
        '2' => "#50b050",
        'B' => "#d03030",
        _ => "#cccccc",
    };
    let color_req = |c: char| match c {
        'o' => "#50b050",
        'X' => "#d03030",
        'C' => "#a020a0",
        'u' => "#e0a000",
        _ => "#ffffff",
    };
    for s in 0..slots {
        let x = 110 + s * 2;
        let _ = writeln!(
            svg,
            "<rect x='{x}' y='30' width='2' height='16' fill='{}'/>",
            color_vip(vip[s])
        );
        let _ = writeln!(
            svg,
            "<rect x='{x}' y='60' width='2' height='16' fill='{}'/>",
            color_req(down[s])
        );
        let _ = writeln!(
            svg,
            "<rect x='{x}' y='90' width='2' height='16' fill='{}'/>",
            color_req(up[s])
        );
    }
    let fx = 110 + tl.fault_slot * 2;
    let _ = writeln!(
        svg,
        "<line x1='{fx}' y1='24' x2='{fx}' y2='112' stroke='black' stroke-dasharray='3,2'/>"
    );
    let _ = writeln!(svg, "<text x='110' y='126'>1 px column = 10 ms; blue ha1, green ha2 / ok, red both / failed, dashed = fault</text>\n</svg>");
    let _ = std::fs::write(base.with_extension("svg"), svg);
}
