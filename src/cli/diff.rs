//! `platform-capstone diff`: what would change, as a unified diff of
//! rendered manifests, with Secret values masked.

use crate::redact;
use crate::render::Rendered;
use crate::source::{Git2Repo, GitRepo};
use crate::yaml;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Renders environments at two points and prints a unified diff of \
the manifests: --env E --from REV --to REV compares one environment between two \
revisions (each revision's own envs/E.toml and overlay), --env A --against-env B \
compares the heads of two environments' branches (what promoting A into B would \
change, besides the pins). Secret data, stringData and last-applied annotations are \
replaced by a stable digest, so a changed Secret still shows as a change but its value \
never appears. Exits 0 when there is no difference, 1 when there is, 4 on error."
)]
pub struct Args {
    /// The environment to render.
    #[arg(long)]
    env: String,
    /// Old revision (with --to).
    #[arg(long, requires = "to", conflicts_with = "against_env")]
    from: Option<String>,
    /// New revision (with --from).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Compare the head of env/<ENV> with the head of env/<AGAINST_ENV>.
    #[arg(long, required_unless_present = "from")]
    against_env: Option<String>,
    /// The config repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Lines of context around each change.
    #[arg(long, default_value_t = 3)]
    context: usize,
}

fn masked_yaml(r: Rendered) -> String {
    let mut objects = r.objects;
    objects.iter_mut().for_each(redact::mask_object);
    yaml::to_string(&objects).unwrap_or_default()
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let repo = Git2Repo::open_local(&a.repo)?;
    let side = |env: &str, rev: &str| -> anyhow::Result<(String, String)> {
        let commit = repo.resolve(rev)?;
        let reader = repo.reader(&commit)?;
        let rendered = super::render::render_env(reader.as_ref(), env)?;
        Ok((
            format!("{env}@{rev} ({})", &commit[..7]),
            masked_yaml(rendered),
        ))
    };
    let ((old_label, old), (new_label, new)) = match (&a.from, &a.to, &a.against_env) {
        (Some(from), Some(to), _) => (side(&a.env, from)?, side(&a.env, to)?),
        (_, _, Some(other)) => (
            side(other, &format!("env/{other}"))?,
            side(&a.env, &format!("env/{}", a.env))?,
        ),
        _ => {
            return Err(super::usage(
                "give --from REV --to REV, or --against-env ENV",
            ));
        }
    };
    if old == new {
        eprintln!("no difference between {old_label} and {new_label}");
        return Ok(ExitCode::SUCCESS);
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    super::write_stdout(
        &diff
            .unified_diff()
            .context_radius(a.context)
            .header(&old_label, &new_label)
            .to_string(),
    )?;
    Ok(ExitCode::from(super::exit::NO))
}
