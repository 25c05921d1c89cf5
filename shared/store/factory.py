"""Pick the configured backends. Imports are lazy so the embedded mode never loads the
Elasticsearch or MongoDB clients, and vice versa."""

from __future__ import annotations

from shared.settings import Settings
from shared.store.base import LogStore, MetaStore
from shared.store.tracing import traced


def create_log_store(settings: Settings) -> LogStore:
    """The LogStore chosen by ``LOGWARDEN_LOG_STORE`` (not yet opened)."""
    if settings.log_store == "elasticsearch":
        from shared.store.elasticsearch_store import ElasticsearchLogStore

        return traced(ElasticsearchLogStore(settings), kind="logstore", system="elasticsearch")
    from shared.store.tantivy_store import TantivyLogStore

    return traced(TantivyLogStore(settings.data_dir / "logs"), kind="logstore", system="tantivy")


def create_meta_store(settings: Settings) -> MetaStore:
    """The MetaStore chosen by ``LOGWARDEN_META_STORE`` (not yet opened)."""
    if settings.meta_store == "mongodb":
        from shared.store.mongo_meta import MongoMetaStore

        assert settings.mongodb_url is not None  # enforced by the settings validator
        return traced(
            MongoMetaStore(settings.mongodb_url.get_secret_value(), settings.mongodb_database),
            kind="metastore",
            system="mongodb",
        )
    from shared.store.sqlite_meta import SqliteMetaStore

    return traced(SqliteMetaStore(settings.data_dir / "meta.sqlite3"), kind="metastore", system="sqlite")
