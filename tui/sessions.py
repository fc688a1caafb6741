"""Conversation sessions: the chat transcript, the latest report and any open question of each thread,
kept in the same SQLite file as the graph's checkpoints (QKV_HOME/sessions.sqlite) in tables of their own
(`tui_sessions`, `tui_messages`). Every message is committed when it is complete, so a killed terminal
loses at most the reply that was streaming."""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

Role = Literal["user", "assistant", "system"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tui_sessions (
  thread_id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
  llm TEXT NOT NULL DEFAULT 'none', report_json TEXT, pending_question TEXT, task TEXT);
CREATE TABLE IF NOT EXISTS tui_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
  ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tui_messages_thread ON tui_messages(thread_id, id);
CREATE TABLE IF NOT EXISTS tui_tool_calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, step TEXT NOT NULL, tool TEXT NOT NULL,
  seconds REAL, summary TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS tui_tool_calls_thread ON tui_tool_calls(thread_id, id);
"""
# Columns added after the first release: a file written by an older qkv gains them on open.
ADDED_COLUMNS = {"opened": "REAL", "steps_json": "TEXT"}


def default_db_path() -> Path:
    """QKV_HOME/sessions.sqlite: one file for the graph's checkpoints and the TUI's transcripts (the
    agent's own default, so both always open the same file)."""
    from qkv.agent.graph.api import default_db_path as agent_db_path

    return agent_db_path()


def new_thread_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class ChatRecord(BaseModel):
    role: Role
    text: str
    ts: float


class SessionInfo(BaseModel):
    """One saved conversation, as listed by the sessions screen."""

    thread_id: str
    title: str
    created: float
    updated: float
    llm: str
    messages: int
    has_report: bool
    pending_question: str | None = None
    task: str | None = None

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.updated))


class SessionStore:
    """Small, synchronous and safe to call from worker threads (one short connection per call)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(tui_sessions)")}
            for col, kind in ADDED_COLUMNS.items():
                if col not in have:
                    db.execute(f"ALTER TABLE tui_sessions ADD COLUMN {col} {kind}")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def ensure(self, thread_id: str, title: str, llm: str) -> None:
        now = time.time()
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR IGNORE INTO tui_sessions(thread_id, title, created, updated, llm, opened) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (thread_id, title[:120], now, now, llm, now))

    def add_message(self, thread_id: str, role: Role, text: str) -> None:
        now = time.time()
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO tui_messages(thread_id, role, text, ts) VALUES (?, ?, ?, ?)",
                       (thread_id, role, text, now))
            db.execute("UPDATE tui_sessions SET updated = ? WHERE thread_id = ?", (now, thread_id))

    def messages(self, thread_id: str) -> list[ChatRecord]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT role, text, ts FROM tui_messages WHERE thread_id = ? ORDER BY id",
                              (thread_id,)).fetchall()
        return [ChatRecord(role=r, text=t, ts=ts) for r, t, ts in rows]

    def user_lines(self, thread_id: str, limit: int = 200) -> list[str]:
        """What the user typed in this session, oldest first (the input's Up/Down history)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT text FROM tui_messages WHERE thread_id = ? AND role = 'user' "
                              "ORDER BY id DESC LIMIT ?", (thread_id, limit)).fetchall()
        return [r[0] for r in reversed(rows)]

    def add_tool_call(self, thread_id: str, step: str, tool: str, seconds: float | None, summary: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO tui_tool_calls(thread_id, step, tool, seconds, summary) VALUES (?, ?, ?, ?, ?)",
                       (thread_id, step, tool, seconds, summary))

    def tool_calls(self, thread_id: str) -> list[tuple[str, str, float | None, str]]:
        """This session's tool calls and jobs, in order: (step, tool, seconds, summary)."""
        with closing(self._connect()) as db:
            return db.execute("SELECT step, tool, seconds, summary FROM tui_tool_calls WHERE thread_id = ? "
                              "ORDER BY id", (thread_id,)).fetchall()

    def opened(self, thread_id: str) -> None:
        """Mark the session as the one on screen: `--resume latest` reopens the last one opened."""
        with closing(self._connect()) as db, db:
            db.execute("UPDATE tui_sessions SET opened = ? WHERE thread_id = ?", (time.time(), thread_id))

    def steps_json(self, thread_id: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT steps_json FROM tui_sessions WHERE thread_id = ?", (thread_id,)).fetchone()
        return row[0] if row else None

    def update(self, thread_id: str, **fields: str | None) -> None:
        """Set any of: title, llm, report_json, pending_question, task, steps_json."""
        allowed = {"title", "llm", "report_json", "pending_question", "task", "steps_json"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown session fields {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._connect()) as db, db:
            db.execute(f"UPDATE tui_sessions SET {cols}, updated = ? WHERE thread_id = ?",
                       (*fields.values(), time.time(), thread_id))

    def get(self, thread_id: str) -> SessionInfo | None:
        rows = self._select("WHERE s.thread_id = ?", (thread_id,))
        return rows[0] if rows else None

    def report_json(self, thread_id: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT report_json FROM tui_sessions WHERE thread_id = ?", (thread_id,)).fetchone()
        return row[0] if row else None

    def list(self, limit: int = 100) -> list[SessionInfo]:
        """Sessions, most recently updated first."""
        return self._select("", (), limit)

    def latest(self) -> SessionInfo | None:
        """The session last opened on screen (the one open at quit), else the last updated."""
        rows = self._select("", (), 1, order="COALESCE(s.opened, 0) DESC, s.updated DESC")
        return rows[0] if rows else None

    def delete(self, thread_id: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM tui_messages WHERE thread_id = ?", (thread_id,))
            db.execute("DELETE FROM tui_tool_calls WHERE thread_id = ?", (thread_id,))
            db.execute("DELETE FROM tui_sessions WHERE thread_id = ?", (thread_id,))

    def _select(self, where: str, args: tuple, limit: int = 100, order: str = "s.updated DESC") -> list[SessionInfo]:
        sql = ("SELECT s.thread_id, s.title, s.created, s.updated, s.llm, s.report_json IS NOT NULL, "
               "s.pending_question, s.task, (SELECT COUNT(*) FROM tui_messages m WHERE m.thread_id = s.thread_id) "
               f"FROM tui_sessions s {where} ORDER BY {order} LIMIT ?")
        with closing(self._connect()) as db:
            rows = db.execute(sql, (*args, limit)).fetchall()
        return [SessionInfo(thread_id=r[0], title=r[1], created=r[2], updated=r[3], llm=r[4], has_report=bool(r[5]),
                            pending_question=r[6], task=r[7], messages=r[8]) for r in rows]
