"""Offline text analysis of customer comments and reviews in Japanese and English."""

from .analyze import Analysis, analyze, analyze_many
from .lang import Lang, detect_language
from .phrases import extract_key_phrases
from .sentiment import Label, Sentiment, analyze_sentiment
from .tokens import Token, tokenize
from .topics import TOPICS, assign_topics

__all__ = [
    "TOPICS",
    "Analysis",
    "Label",
    "Lang",
    "Sentiment",
    "Token",
    "analyze",
    "analyze_many",
    "analyze_sentiment",
    "assign_topics",
    "detect_language",
    "extract_key_phrases",
    "tokenize",
]
