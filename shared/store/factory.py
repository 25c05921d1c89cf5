"""Pick the configured backends. Imports are lazy so the embedded mode never loads the
Elasticsearch or MongoDB clients, and vice versa."""

from __future__ import annotations

from shared.settings import Settings
from shared.store.base import LogStore, MetaStore


def create_log_store(settings: Settings) -> LogStore:
    """The LogStore chosen by ``LOGWARDEN_LOG_STORE`` (not yet opened)."""
    if settings.log_store == "elasticsearch":
        from shared.store.elasticsearch_store import ElasticsearchLogStore

        return ElasticsearchLogStore(settings)
    from shared.store.tantivy_store import TantivyLogStore

    return TantivyLogStore(settings.data_dir / "logs")


def create_meta_store(settings: Settings) -> MetaStore:
    """The MetaStore chosen by ``LOGWARDEN_META_STORE`` (not yet opened)."""
    if settings.meta_store == "mongodb":
        from shared.store.mongo_meta import MongoMetaStore

        assert settings.mongodb_url is not None  # enforced by the settings validator
        return MongoMetaStore(settings.mongodb_url.get_secret_value(), settings.mongodb_database)
    from shared.store.sqlite_meta import SqliteMetaStore

    return SqliteMetaStore(settings.data_dir / "meta.sqlite3")
