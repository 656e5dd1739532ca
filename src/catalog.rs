//! The board catalogue: built-in templates from `boards/` (read-only) merged with
//! user-defined ones from the database, and the processor, peripheral and bus lists
//! derived from them. Built-in ids always win: a user template cannot shadow one. User
//! templates also keep the rules of `user_template`, which keep the emulator off the
//! server's host; they are checked again when read back from the database.

mod user_template;

use std::collections::BTreeMap;

pub use user_template::UnsafeTemplate;

use crate::boards::{BoardError, BoardTemplate, LoadedBoards};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no board template '{0}'")]
    NotFound(String),
    #[error("board template '{0}' is built in and read-only")]
    ReadOnly(String),
    #[error("board template '{0}' already exists")]
    Exists(String),
    #[error("board template '{id}' is used by {sessions} session(s)")]
    InUse { id: String, sessions: usize },
    /// A malformed template.
    #[error(transparent)]
    Invalid(#[from] BoardError),
    /// A well-formed user template that could make the emulator reach the host.
    #[error(transparent)]
    Unsafe(#[from] UnsafeTemplate),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CatalogError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what } => CatalogError::Exists(what),
            other => CatalogError::Store(other),
        }
    }
}

/// A user template: parsed and validated like a file under boards/, then held to the
/// rules that keep the emulator off the server's host.
fn parse_user_board(source_name: &str, definition: &str) -> Result<BoardTemplate, CatalogError> {
    let board = BoardTemplate::parse(source_name, definition)?;
    user_template::check(&board)?;
    Ok(board)
}

/// Where a template comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    User,
}

#[derive(Debug, Clone)]
pub struct CatalogBoard {
    pub board: BoardTemplate,
    pub origin: Origin,
}

/// One processor, peripheral or bus kind, with the boards that have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: String,
    pub detail: String,
    pub boards: Vec<String>,
}

pub struct Catalog {
    builtin: Vec<BoardTemplate>,
    store: Store,
}

impl Catalog {
    /// Takes the loaded built-ins; the load errors are logged by the caller.
    pub fn new(loaded: LoadedBoards, store: Store) -> Self {
        Self {
            builtin: loaded.boards,
            store,
        }
    }

    pub async fn boards(&self) -> Result<Vec<CatalogBoard>, CatalogError> {
        let mut boards: Vec<CatalogBoard> = self
            .builtin
            .iter()
            .map(|board| CatalogBoard {
                board: board.clone(),
                origin: Origin::BuiltIn,
            })
            .collect();
        for record in self.store.board_templates().await? {
            // Checked again: a template stored under older rules must not run.
            match parse_user_board(
                &format!("board template '{}'", record.id),
                &record.definition,
            ) {
                Ok(board) if !self.is_builtin(&board.id) => boards.push(CatalogBoard {
                    board,
                    origin: Origin::User,
                }),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    template = %record.id,
                    %error,
                    "stored board template no longer valid"
                ),
            }
        }
        Ok(boards)
    }

    pub async fn board(&self, id: &str) -> Result<CatalogBoard, CatalogError> {
        self.boards()
            .await?
            .into_iter()
            .find(|b| b.board.id == id)
            .ok_or_else(|| CatalogError::NotFound(id.to_owned()))
    }

    fn is_builtin(&self, id: &str) -> bool {
        self.builtin.iter().any(|b| b.id == id)
    }

    pub async fn create(&self, definition: &str) -> Result<BoardTemplate, CatalogError> {
        let board = parse_user_board("definition", definition)?;
        if self.is_builtin(&board.id) {
            return Err(CatalogError::Exists(board.id));
        }
        self.store
            .insert_board_template(&board.id, &board.to_yaml())
            .await?;
        Ok(board)
    }

    pub async fn update(&self, id: &str, definition: &str) -> Result<BoardTemplate, CatalogError> {
        if self.is_builtin(id) {
            return Err(CatalogError::ReadOnly(id.to_owned()));
        }
        let board = parse_user_board("definition", definition)?;
        if board.id != id {
            return Err(CatalogError::Invalid(BoardError::Invalid {
                source_name: "definition".into(),
                field: "id".into(),
                message: format!("is '{}' but the template being updated is '{id}'", board.id),
            }));
        }
        if !self
            .store
            .update_board_template(id, &board.to_yaml())
            .await?
        {
            return Err(CatalogError::NotFound(id.to_owned()));
        }
        Ok(board)
    }

    pub async fn delete(&self, id: &str) -> Result<(), CatalogError> {
        if self.is_builtin(id) {
            return Err(CatalogError::ReadOnly(id.to_owned()));
        }
        let sessions = self
            .store
            .sessions()
            .await?
            .iter()
            .filter(|s| s.board_id == id)
            .count();
        if sessions > 0 {
            return Err(CatalogError::InUse {
                id: id.to_owned(),
                sessions,
            });
        }
        if !self.store.delete_board_template(id).await? {
            return Err(CatalogError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Processors: one entry per (arch, cpu).
    pub async fn processors(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        self.derive(|board| vec![(board.cpu.clone(), board.arch.as_str().to_owned())])
            .await
    }

    /// Peripherals: one entry per device model.
    pub async fn peripherals(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        self.derive(|board| {
            board
                .peripherals
                .iter()
                .map(|p| (p.model.clone(), p.kind.clone()))
                .collect()
        })
        .await
    }

    /// Buses: one entry per bus kind.
    pub async fn buses(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        self.derive(|board| {
            board
                .buses
                .iter()
                .map(|b| (b.kind.clone(), b.kind.clone()))
                .collect()
        })
        .await
    }

    async fn derive(
        &self,
        items: impl Fn(&BoardTemplate) -> Vec<(String, String)>,
    ) -> Result<Vec<CatalogEntry>, CatalogError> {
        let mut entries: BTreeMap<String, CatalogEntry> = BTreeMap::new();
        for CatalogBoard { board, .. } in self.boards().await? {
            for (name, detail) in items(&board) {
                let entry = entries.entry(name.clone()).or_insert_with(|| CatalogEntry {
                    name,
                    detail,
                    boards: Vec::new(),
                });
                if !entry.boards.contains(&board.id) {
                    entry.boards.push(board.id.clone());
                }
            }
        }
        Ok(entries.into_values().collect())
    }
}
