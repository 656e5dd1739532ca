//! The symbolic side of the debug API: backtraces, the variables of a frame, and
//! expressions evaluated or assigned in the program's own terms (C names and types),
//! answered by the session's GDB (`crate::symbolic`). Every failure is a coded error
//! with a one-line message; nothing of GDB/MI reaches the client.

use async_graphql::{Context, ID, Object, SimpleObject};

use super::errors::{ApiError, ApiResult, coded};
use super::sessions::app;
use crate::symbolic::{self, SymbolicError};

#[derive(SimpleObject)]
#[graphql(name = "Frame")]
pub struct FrameObject {
    /// 0 is the innermost frame (where the CPU stopped).
    level: i32,
    function: Option<String>,
    file: Option<String>,
    line: Option<i32>,
    /// The frame's code address as "0x...".
    pc: String,
}

#[derive(SimpleObject)]
#[graphql(name = "Variable")]
pub struct VariableObject {
    name: String,
    /// As GDB prints it.
    value: String,
    #[graphql(name = "type")]
    type_name: String,
}

#[derive(SimpleObject)]
#[graphql(name = "Value")]
pub struct ValueObject {
    /// As GDB prints it.
    value: String,
    #[graphql(name = "type")]
    type_name: String,
}

impl From<symbolic::Value> for ValueObject {
    fn from(value: symbolic::Value) -> Self {
        Self {
            value: value.value,
            type_name: value.type_name,
        }
    }
}

fn symbolic_error(error: SymbolicError) -> ApiError {
    let code = match &error {
        SymbolicError::Unavailable(_) => "GDB_UNAVAILABLE",
        // The codes the register and memory calls use for the same conditions.
        SymbolicError::NotHalted => "NOT_HALTED",
        SymbolicError::NoSymbols(_) => "NO_DEBUG_INFO",
        SymbolicError::BadExpression(_) => "BAD_EXPRESSION",
        SymbolicError::NoSuchFrame(_) => "NO_SUCH_FRAME",
        SymbolicError::Failed(_) | SymbolicError::Timeout(_) => "GDB_FAILED",
    };
    coded(code, error.to_string()).into()
}

fn frame_number(frame: i32) -> ApiResult<u32> {
    u32::try_from(frame).map_err(|_| coded("BAD_INPUT", "frame must be 0 or more").into())
}

#[derive(Default)]
pub struct SymbolicQuery;

#[Object]
impl SymbolicQuery {
    /// The call stack of a halted session, innermost frame first.
    async fn backtrace(&self, ctx: &Context<'_>, session_id: ID) -> ApiResult<Vec<FrameObject>> {
        let app = app(ctx);
        let debugger = app.sessions.debugger(&session_id).await?;
        let frames = symbolic::backtrace(&app.gdb, &debugger)
            .await
            .map_err(symbolic_error)?;
        Ok(frames
            .into_iter()
            .map(|frame| FrameObject {
                level: i32::try_from(frame.level).unwrap_or(i32::MAX),
                function: frame.function,
                file: frame.file,
                line: frame.line.and_then(|line| i32::try_from(line).ok()),
                pc: frame.pc,
            })
            .collect())
    }

    /// The arguments, then the locals, of a frame of a halted session.
    async fn locals(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default = 0)] frame: i32,
    ) -> ApiResult<Vec<VariableObject>> {
        let frame = frame_number(frame)?;
        let app = app(ctx);
        let debugger = app.sessions.debugger(&session_id).await?;
        let variables = symbolic::locals(&app.gdb, &debugger, frame)
            .await
            .map_err(symbolic_error)?;
        Ok(variables
            .into_iter()
            .map(|variable| VariableObject {
                name: variable.name,
                value: variable.value,
                type_name: variable.type_name,
            })
            .collect())
    }

    /// A C expression in the scope of a frame (globals, locals, registers as `$pc`);
    /// it cannot call the program's functions.
    async fn evaluate(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        expression: String,
        #[graphql(default = 0)] frame: i32,
    ) -> ApiResult<ValueObject> {
        let frame = frame_number(frame)?;
        let app = app(ctx);
        let debugger = app.sessions.debugger(&session_id).await?;
        Ok(symbolic::evaluate(&app.gdb, &debugger, &expression, frame)
            .await
            .map_err(symbolic_error)?
            .into())
    }
}

#[derive(Default)]
pub struct SymbolicMutation;

#[Object]
impl SymbolicMutation {
    /// Assigns `value` (an expression) to the variable or lvalue `name` in the scope of
    /// a frame; returns the new value and its type.
    async fn set_variable(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        name: String,
        value: String,
        #[graphql(default = 0)] frame: i32,
    ) -> ApiResult<ValueObject> {
        let frame = frame_number(frame)?;
        let app = app(ctx);
        let debugger = app.sessions.debugger(&session_id).await?;
        Ok(
            symbolic::set_variable(&app.gdb, &debugger, &name, &value, frame)
                .await
                .map_err(symbolic_error)?
                .into(),
        )
    }
}
