//! `spindle param`.

use crate::cli::ParamCmd;
use crate::context::{api_err, Context};
use crate::output;
use anyhow::Result;
use spindle_model::api::{Param, PutParam};
use spindle_model::ParamName;

fn print(cx: &Context, p: &Param) {
    if cx.json() {
        output::json(p);
    } else {
        output::fields(&[
            ("name", p.name.to_string()),
            ("type", p.kind.clone()),
            ("value", p.value.clone()),
            ("version", p.version.to_string()),
            ("last modified", p.last_modified.clone()),
        ]);
    }
}

pub fn run(cx: &Context, cmd: ParamCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        ParamCmd::Put {
            name,
            value,
            kind,
            description,
            overwrite,
        } => {
            let p = c
                .put_param(
                    &account,
                    &ParamName::parse(&name)?,
                    &PutParam {
                        value,
                        kind,
                        description,
                        overwrite,
                    },
                )
                .map_err(api_err)?;
            print(cx, &p);
        }
        ParamCmd::Get { name, decrypt } => print(
            cx,
            &c.get_param(&account, &ParamName::parse(&name)?, decrypt)
                .map_err(api_err)?,
        ),
        ParamCmd::List { prefix } => {
            let ps = c.list_params(&account, &prefix).map_err(api_err)?;
            if cx.json() {
                output::json(&ps);
            } else {
                let rows: Vec<Vec<String>> = ps
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.to_string(),
                            p.kind.clone(),
                            p.version.to_string(),
                            p.value.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "TYPE", "VERSION", "VALUE"], &rows);
            }
        }
        ParamCmd::Delete { name } => {
            c.delete_param(&account, &ParamName::parse(&name)?)
                .map_err(api_err)?;
            if !cx.json() {
                println!("Deleted parameter {name}.");
            }
        }
    }
    Ok(())
}
