//! Running the role processes: starting them, collecting their report lines, killing
//! them on the way out, and one measured run per transport.

use super::*;

/// A demo process, with threads collecting its stdout lines and its stderr.
pub(super) struct Proc {
    pub(super) what: &'static str,
    pub(super) child: Option<std::process::Child>,
    pub(super) lines: mpsc::Receiver<String>,
    pub(super) stdout: Option<JoinHandle<()>>,
    pub(super) stderr: Option<JoinHandle<Vec<String>>>,
}

/// How a demo process ended, and what it printed.
pub(super) struct Finished {
    pub(super) what: &'static str,
    pub(super) pid: u32,
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<String>,
    pub(super) stderr: Vec<String>,
}

pub(super) fn collector<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Outcome<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(format!("demo-{what}"))
        .spawn(f)
        .map_err(|e| Failure::msg(format!("cannot start a thread to read the {what}: {e}")))
}

impl Proc {
    /// Starts `cmd` (its stdin and stdout already set up; stderr is collected).
    fn spawn(what: &'static str, mut cmd: Command) -> Outcome<Proc> {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Failure::msg(format!(
                "cannot start the demo {what} ({}): {e}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
        // Dropping the command closes our copies of the pipe ends it handed to the child.
        drop(cmd);
        let (tx, lines) = mpsc::channel();
        let stdout = match child.stdout.take() {
            Some(out) => Some(collector(what, move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })?),
            None => None,
        };
        let stderr = match child.stderr.take() {
            Some(err) => Some(collector(what, move || {
                let mut text = Vec::new();
                let _ = BufReader::new(err).read_to_end(&mut text);
                String::from_utf8_lossy(&text)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })?),
            None => None,
        };
        Ok(Proc {
            what,
            child: Some(child),
            lines,
            stdout,
            stderr,
        })
    }

    /// The next line the process prints on stdout, waiting until `deadline`.
    fn line(&self, deadline: Instant) -> Option<String> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Waits for the process to exit until `deadline`, then kills it.
    fn finish(mut self, deadline: Instant) -> Outcome<Finished> {
        let what = self.what;
        let Some(mut child) = self.child.take() else {
            return Err(Failure::msg(format!("the demo {what} was already reaped")));
        };
        let pid = child.id();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Failure::msg(format!(
                        "the demo {what} (pid {pid}) did not finish in time and was killed; \
                         is the machine overloaded? try a shorter --seconds"
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(Failure::msg(format!(
                        "cannot wait for the demo {what} (pid {pid}): {e}"
                    )))
                }
            }
        };
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Ok(Finished {
            what,
            pid,
            status,
            stdout: self.lines.try_iter().collect(),
            stderr,
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A demo process we gave up on must not outlive the demo.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Finished {
    /// The process's report: the last line of stdout (or stderr) that parses as one.
    fn report<T: DeserializeOwned>(&self, on_stderr: bool) -> Outcome<T> {
        let lines = if on_stderr {
            &self.stderr
        } else {
            &self.stdout
        };
        if let Some(r) = lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str::<T>(l).ok())
        {
            return Ok(r);
        }
        let said: Vec<&str> = self
            .stderr
            .iter()
            .map(String::as_str)
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .collect();
        Err(Failure::msg(format!(
            "the demo {} (pid {}) ended ({}) without a report{}",
            self.what,
            self.pid,
            self.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {}", said.join(" / "))
            }
        )))
    }
}

/// One run of a sender and a receiver: how long, how big, how fast.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) seconds: f64,
    pub(super) size: u32,
    /// Messages per second (0: flat out).
    pub(super) rate: u64,
}

/// The command line of a demo process, with stdin empty and stdout piped to us.
pub(super) fn role_command(exe: &Path, role: &str, name: &str, plan: Plan) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg(role)
        .arg("--seconds")
        .arg(plan.seconds.to_string())
        .arg("--size")
        .arg(plan.size.to_string())
        .arg("--rate")
        .arg(plan.rate.to_string());
    if !name.is_empty() {
        cmd.arg("--name").arg(name);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd
}

/// What one sender and receiver pair reported.
pub(super) struct Run {
    pub(super) sent: SenderReport,
    pub(super) recv: ReceiverReport,
}

impl Run {
    pub(super) fn seconds(&self) -> f64 {
        self.recv
            .last_recv_ns
            .saturating_sub(self.recv.first_sent_ns) as f64
            / 1e9
    }

    pub(super) fn per_second(&self, n: u64) -> f64 {
        let s = self.seconds();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }
}

pub(super) fn measure_shmlane(exe: &Path, name: &str, plan: Plan) -> Outcome<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(plan.seconds) + GRACE;
    let consumer = Proc::spawn("consumer", role_command(exe, "demo-consumer", name, plan))?;
    let producer = Proc::spawn("producer", role_command(exe, "demo-producer", name, plan))?;
    // If the producer fails, returning drops (and so kills) the consumer.
    let sent = producer.finish(deadline)?.report(false)?;
    let recv = consumer.finish(deadline)?.report(false)?;
    Ok(Run { sent, recv })
}

/// [`measure_shmlane`] on channel `name`, which is removed afterwards if a side left it.
pub(super) fn measure_channel(exe: &Path, name: &str, plan: Plan) -> Outcome<Run> {
    let run = measure_shmlane(exe, name, plan);
    // The last side out removes the name; if a side died, we do.
    if shm_bridge::shm_path(name).exists() {
        let _ = shm_bridge::inspect::remove(name, true);
    }
    run
}

pub(super) fn measure_pipe(exe: &Path, plan: Plan) -> Outcome<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(plan.seconds) + GRACE;
    let (read_end, write_end) =
        std::io::pipe().map_err(|e| Failure::msg(format!("cannot create a pipe: {e}")))?;
    let mut cmd = role_command(exe, "demo-pipe-reader", "", plan);
    cmd.stdin(read_end);
    let reader = Proc::spawn("pipe reader", cmd)?;
    if reader.line(Instant::now() + CONNECT).as_deref() != Some("ready") {
        let f = reader.finish(deadline)?;
        return Err(f
            .report::<ReceiverReport>(false)
            .err()
            .unwrap_or_else(|| Failure::msg("the demo pipe reader did not start")));
    }
    let mut cmd = role_command(exe, "demo-pipe-writer", "", plan);
    cmd.stdout(write_end);
    let writer = Proc::spawn("pipe writer", cmd)?;
    let sent = writer.finish(deadline)?.report(true)?;
    let recv = reader.finish(deadline)?.report(false)?;
    Ok(Run { sent, recv })
}
