//! A benchmark run as data: what the guest printed, turned into the report that
//! `target/bench/latest.json` holds, and read back from such a file.

use super::json::{self, Value};
use super::machine;

/// How the guest's clock was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-icount shift=0`: the TSC counts guest instructions, exactly and repeatably.
    Icount,
    /// Real time: the TSC counts (emulated) cycles, and figures vary from run to run.
    Cycles,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Icount => "icount",
            Mode::Cycles => "cycles",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Mode::Icount => "instructions",
            Mode::Cycles => "cycles",
        }
    }

    fn from_name(name: &str) -> Option<Mode> {
        [Mode::Icount, Mode::Cycles]
            .into_iter()
            .find(|mode| mode.name() == name)
    }
}

/// One benchmark's figures, per operation, in the mode's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub name: String,
    pub iterations: u64,
    pub min: f64,
    pub median: f64,
    pub p99: f64,
    pub mean: f64,
    /// Timer interrupts during the measured run (an upper bound on disturbed samples).
    pub timer_ticks_inside: u64,
}

/// A benchmark the guest knows about but cannot run yet, and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub name: String,
    pub needs: String,
}

/// Facts about the guest's clock from its `KBENCH_INFO` line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GuestInfo {
    pub tsc_hz: f64,
    /// What an empty timed window reads; already taken off every figure.
    pub timer_read_overhead: f64,
}

/// Everything the guest reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuestOutput {
    pub info: Option<GuestInfo>,
    pub results: Vec<BenchResult>,
    pub unavailable: Vec<Unavailable>,
}

const INFO: &str = "KBENCH_INFO ";
const RESULT: &str = "BENCH ";
const UNAVAILABLE: &str = "BENCH_UNAVAILABLE ";

/// Collect the machine-readable lines of a guest's serial log; other lines are ignored.
pub fn parse_guest<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<GuestOutput, String> {
    let mut output = GuestOutput::default();
    for line in lines {
        parse_line(line, &mut output).map_err(|error| format!("`{line}`: {error}"))?;
    }
    Ok(output)
}

fn parse_line(line: &str, output: &mut GuestOutput) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix(INFO) {
        let value = json::parse(rest)?;
        output.info = Some(GuestInfo {
            tsc_hz: number(&value, "tsc_hz")?,
            timer_read_overhead: number(&value, "timer_read_overhead")?,
        });
    } else if let Some(rest) = line.strip_prefix(RESULT) {
        output.results.push(result_from(&json::parse(rest)?)?);
    } else if let Some(rest) = line.strip_prefix(UNAVAILABLE) {
        output
            .unavailable
            .push(unavailable_from(&json::parse(rest)?)?);
    }
    Ok(())
}

/// Where and how the figures were taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// The host CPU's model name.
    pub cpu: String,
    /// `qemu-system-x86_64 --version`'s first line.
    pub qemu: String,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// The guest's TSC rate as it measured it against its timer.
    pub tsc_hz: f64,
    /// What reading the clock twice costs in the guest, taken off every figure.
    pub timer_read_overhead: f64,
}

/// A whole run: the file `cargo boot bench` writes and `--compare` reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub mode: Mode,
    pub results: Vec<BenchResult>,
    pub unavailable: Vec<Unavailable>,
}

impl Report {
    /// What kbench printed (`output`), run on this host's CPU and QEMU with `accel`.
    pub fn of_guest(output: GuestOutput, accel: &str, mode: Mode) -> Report {
        Report::on(
            output,
            machine::cpu_model(),
            machine::qemu_version(),
            accel,
            mode,
        )
    }

    fn on(output: GuestOutput, cpu: String, qemu: String, accel: &str, mode: Mode) -> Report {
        let info = output.info.unwrap_or_default();
        Report {
            machine: Machine {
                cpu,
                qemu,
                accel: accel.into(),
                tsc_hz: info.tsc_hz,
                timer_read_overhead: info.timer_read_overhead,
            },
            mode,
            results: output.results,
            unavailable: output.unavailable,
        }
    }

    pub fn result(&self, name: &str) -> Option<&BenchResult> {
        self.results.iter().find(|result| result.name == name)
    }

    /// Nanoseconds for `count` TSC units, when the unit is cycles.
    pub fn nanoseconds(&self, count: f64) -> Option<f64> {
        (self.mode == Mode::Cycles && self.machine.tsc_hz > 0.0)
            .then(|| count * 1e9 / self.machine.tsc_hz)
    }

    pub fn to_json(&self) -> Value {
        let machine = Value::Object(vec![
            ("cpu".into(), Value::String(self.machine.cpu.clone())),
            ("qemu".into(), Value::String(self.machine.qemu.clone())),
            ("accel".into(), Value::String(self.machine.accel.clone())),
            ("tsc_hz".into(), Value::Number(self.machine.tsc_hz)),
            (
                "timer_read_overhead".into(),
                Value::Number(self.machine.timer_read_overhead),
            ),
        ]);
        let results = self.results.iter().map(|r| self.result_json(r)).collect();
        let unavailable = self
            .unavailable
            .iter()
            .map(|u| {
                Value::Object(vec![
                    ("name".into(), Value::String(u.name.clone())),
                    ("needs".into(), Value::String(u.needs.clone())),
                ])
            })
            .collect();
        Value::Object(vec![
            ("machine".into(), machine),
            ("mode".into(), Value::String(self.mode.name().into())),
            ("results".into(), Value::Array(results)),
            ("unavailable".into(), Value::Array(unavailable)),
        ])
    }

    fn result_json(&self, r: &BenchResult) -> Value {
        let mut members = vec![
            ("name".into(), Value::String(r.name.clone())),
            ("unit".into(), Value::String(self.mode.unit().into())),
            ("iterations".into(), Value::Number(r.iterations as f64)),
            ("min".into(), Value::Number(r.min)),
            ("median".into(), Value::Number(r.median)),
            ("p99".into(), Value::Number(r.p99)),
            ("mean".into(), Value::Number(r.mean)),
            (
                "timer_ticks_inside".into(),
                Value::Number(r.timer_ticks_inside as f64),
            ),
        ];
        if let Some(ns) = self.nanoseconds(r.median) {
            members.push(("median_ns".into(), Value::Number(ns)));
        }
        Value::Object(members)
    }

    pub fn from_json(value: &Value) -> Result<Report, String> {
        let machine = value.get("machine").ok_or("no `machine`")?;
        let mode = text(value, "mode")?;
        let mode = Mode::from_name(&mode).ok_or_else(|| format!("unknown mode `{mode}`"))?;
        let results = value
            .get("results")
            .and_then(Value::as_array)
            .ok_or("no `results` array")?
            .iter()
            .map(result_from)
            .collect::<Result<_, _>>()?;
        let unavailable = match value.get("unavailable").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .map(unavailable_from)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(Report {
            machine: Machine {
                cpu: text(machine, "cpu")?,
                qemu: text(machine, "qemu")?,
                accel: text(machine, "accel")?,
                tsc_hz: number(machine, "tsc_hz")?,
                timer_read_overhead: number(machine, "timer_read_overhead")?,
            },
            mode,
            results,
            unavailable,
        })
    }
}

/// A result object, from the guest's line or from a report file (which has more members).
fn result_from(value: &Value) -> Result<BenchResult, String> {
    Ok(BenchResult {
        name: text(value, "name")?,
        iterations: number(value, "iterations")? as u64,
        min: number(value, "min")?,
        median: number(value, "median")?,
        p99: number(value, "p99")?,
        mean: number(value, "mean")?,
        timer_ticks_inside: number(value, "timer_ticks_inside")? as u64,
    })
}

fn unavailable_from(value: &Value) -> Result<Unavailable, String> {
    Ok(Unavailable {
        name: text(value, "name")?,
        needs: text(value, "needs")?,
    })
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no number `{key}`"))
}

fn text(value: &Value, key: &str) -> Result<String, String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no string `{key}`"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LOG: &[&str] = &[
        "keel: started process 1 (kbench) from the first boot module",
        r#"KBENCH_INFO {"tsc_hz":999936100,"timer_read_overhead":5,"tick_hz":1000}"#,
        "kbench: null_syscall: 1000 warm-up, 10000 measured ...",
        r#"BENCH {"name":"null_syscall","iterations":10000,"ops_per_sample":1,"min":70,"median":70,"p99":71,"mean":70.02,"timer_ticks_inside":0}"#,
        r#"BENCH {"name":"yield_cross_as","iterations":10000,"ops_per_sample":2,"min":650.5,"median":650.5,"p99":650.5,"mean":650.61,"timer_ticks_inside":13}"#,
        r##"BENCH_UNAVAILABLE {"name":"service_call","needs":"#[service]"}"##,
        "kbench: all benchmarks ran",
    ];

    pub fn sample_report(mode: Mode) -> Report {
        let output = parse_guest(LOG.iter().copied()).unwrap();
        assert!(output.info.is_some());
        let (cpu, qemu) = ("AMD EPYC".into(), "QEMU emulator version 7.2.22".into());
        Report::on(output, cpu, qemu, "tcg", mode)
    }

    #[test]
    fn guest_lines_become_results() {
        let output = parse_guest(LOG.iter().copied()).unwrap();
        assert_eq!(
            output.info,
            Some(GuestInfo {
                tsc_hz: 999936100.0,
                timer_read_overhead: 5.0
            })
        );
        assert_eq!(output.results.len(), 2);
        assert_eq!(
            output.results[1],
            BenchResult {
                name: "yield_cross_as".into(),
                iterations: 10000,
                min: 650.5,
                median: 650.5,
                p99: 650.5,
                mean: 650.61,
                timer_ticks_inside: 13,
            }
        );
        assert_eq!(output.unavailable[0].name, "service_call");
    }

    #[test]
    fn a_garbled_result_line_is_an_error_naming_it() {
        let error = parse_guest(["BENCH {\"name\":\"x\",\"min\":}"]).unwrap_err();
        assert!(error.starts_with("`BENCH {"), "{error}");
        let error = parse_guest([r#"BENCH {"name":"x"}"#]).unwrap_err();
        assert!(error.ends_with("no number `iterations`"), "{error}");
    }

    #[test]
    fn reports_read_back_as_written() {
        for mode in [Mode::Icount, Mode::Cycles] {
            let report = sample_report(mode);
            let text = report.to_json().pretty();
            assert_eq!(Report::from_json(&json::parse(&text).unwrap()), Ok(report));
        }
    }

    #[test]
    fn the_file_has_the_agreed_shape() {
        let value = sample_report(Mode::Icount).to_json();
        assert_eq!(value.get("mode").and_then(Value::as_str), Some("icount"));
        let first = &value.get("results").and_then(Value::as_array).unwrap()[0];
        let keys: Vec<&str> = match first {
            Value::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("a result is an object"),
        };
        assert_eq!(
            keys,
            [
                "name",
                "unit",
                "iterations",
                "min",
                "median",
                "p99",
                "mean",
                "timer_ticks_inside"
            ]
        );
        assert_eq!(
            first.get("unit").and_then(Value::as_str),
            Some("instructions")
        );
    }

    #[test]
    fn cycles_reports_carry_nanoseconds() {
        let report = sample_report(Mode::Cycles);
        let ns = report.nanoseconds(999936100.0).unwrap();
        assert!((ns - 1e9).abs() < 1e-3, "{ns}");
        let first = &report.to_json().get("results").unwrap().as_array().unwrap()[0].clone();
        assert!(first.get("median_ns").is_some());
        assert_eq!(sample_report(Mode::Icount).nanoseconds(70.0), None);
    }
}
