"""Tables. Alembic migrations in `alembic/versions` create them; this is their Python view,
one module per area."""

from app.models.auth import ApiToken, AuthSession, Invite, User
from app.models.base import EMBEDDING_DIM, Base, utcnow
from app.models.cache import ResponseCacheEntry
from app.models.chat import Conversation, Feedback, Message
from app.models.corpus import Chunk, CommonLexeme, CorpusDigest, Document
from app.models.money import LLMCall, Reservation, SpendCounter
from app.models.ops import Alert, AppFlag, GuardrailTrigger, Incident, StatusProbe
from app.models.quality import QualityScore
from app.models.rollups import CallRollupHourly, UserRollupDaily

__all__ = [
    "Alert",
    "ApiToken",
    "AppFlag",
    "AuthSession",
    "Base",
    "CallRollupHourly",
    "Chunk",
    "Conversation",
    "CommonLexeme",
    "CorpusDigest",
    "Document",
    "EMBEDDING_DIM",
    "Feedback",
    "GuardrailTrigger",
    "Incident",
    "Invite",
    "LLMCall",
    "Message",
    "QualityScore",
    "Reservation",
    "ResponseCacheEntry",
    "SpendCounter",
    "StatusProbe",
    "User",
    "UserRollupDaily",
    "utcnow",
]
