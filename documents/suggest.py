"""Which library items answer a question: text only, pure, nothing downloaded.

:func:`rank` scores each candidate against a question in [0, 1] from three signals:

- **BM25 over words**: lower-cased, British spellings folded to American, stop words (and the
  filler of RFP questions: "describe", "please provide"…) removed, then stemmed by
  :func:`stem`; the title counts twice, the tags once, the body once (a BM25F-style field
  boost).
- **Concepts**: a small table of the deal-desk / RFP / security-questionnaire vocabulary
  (:data:`CONCEPTS`) maps phrases and acronyms that mean the same thing to one concept:
  "SSO", "single sign-on", "SAML", "identity provider" are all ``sso``. Each concept found
  adds a token to the words (so BM25 sees "2FA" and "multi-factor" as one term), and the
  share of the question's concepts an item covers is a signal of its own.
- **Character 3–5-grams**: TF-IDF cosine of the words' character n-grams, which forgives
  morphology and spelling the stemmer and the table miss ("pseudonymized" / "pseudonymise").

Scores are comparable across questions (BM25 is saturated, not divided by the best one), so
a caller may cut at a threshold. :func:`query_terms` gives the words (concept phrases
included) a full-text index should be asked for to find candidates in a large library.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

WEIGHTS = (0.5, 0.2, 0.3)
"""BM25 (saturated), character n-gram cosine, concept coverage. These and the constants
below were chosen on the even-numbered questions of ``bench/rfp_match_data.json`` only; the
bench reports the odd-numbered half as held out."""
BM25_K1 = 1.2
BM25_B = 0.75
BM25_HALF = 6.0
"""The BM25 score that maps to 0.5 (saturation ``x / (x + BM25_HALF)``)."""
TITLE_BOOST = 2
CONCEPT_BOOST = 3
"""How many times a concept named in the question counts in its BM25 query."""
NGRAMS = (3, 4, 5)

_WORD = re.compile(r"[a-z0-9]+")

_STOPWORD_TEXT = """
a about above after again all also am an and any are as at be because been before being
below between both but by can could did do does doing done down during each either etc few
for from further had has have having he her here hers how i if in into is it its itself just
let may me might more most must my no nor not now of off on once only or other our ours out
over own per please same shall she should so some such than that the their theirs them then
there these they this those through to too under until up upon us very via was we were what
when where whether which while who whom whose why will with within without would yes you your
yours ie eg e g
describe description explain detail details provide outline indicate confirm state specify
list give share tell summarize summarise elaborate
solution solutions platform system systems application applications software tool tools
vendor vendors offering proposed respondent bidder approach process procedures
support supports supported offer offered available availability use used using
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Common English words and what RFP questions say around the subject. ("availability"
and "support" say nothing alone; the concept table keeps "99.9% availability" and
"support hours" meaningful.)"""

_SPELLING = (("isation", "ization"), ("ising", "izing"), ("ised", "ized"), ("ise", "ize"),
             ("yse", "yze"), ("ysed", "yzed"), ("ysing", "yzing"), ("ogue", "og"))
_SPELLING_WORDS = {"centre": "center", "centres": "centers", "programme": "program",
                   "programmes": "programs", "colour": "color", "behaviour": "behavior",
                   "licence": "license", "licences": "licenses", "defence": "defense",
                   "defences": "defenses", "catalogue": "catalog", "catalogues": "catalogs",
                   "organisation": "organization", "favour": "favor", "cancelled": "canceled"}


def _american(word: str) -> str:
    if word in _SPELLING_WORDS:
        return _SPELLING_WORDS[word]
    for british, american in _SPELLING:
        if word.endswith(british) and len(word) > len(british) + 3:
            return word[: -len(british)] + american
    return word


_STEPS = (
    ("ational", "ate"), ("ization", "ize"), ("ations", "ate"), ("ation", "ate"),
    ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("ments", ""), ("ment", ""),
    ("ness", ""), ("ities", ""), ("ity", ""), ("ings", ""), ("ing", ""), ("edly", ""),
    ("ed", ""), ("ly", ""), ("able", ""), ("ible", ""), ("ance", ""), ("ence", ""),
    ("ive", ""), ("ize", ""), ("ions", ""), ("ion", ""), ("ers", ""), ("er", ""), ("ors", ""),
    ("or", ""), ("al", ""), ("ic", ""), ("ful", ""), ("ous", ""),
)


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A small suffix stripper (Porter's spirit, not its letter): plurals first, then the
    longest matching derivational or inflectional ending, repeated while a stem of at least
    three letters remains, then a final ``e``. Over-stemming is harmless here because the
    question and the items go through the same function."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for _ in range(3):
        for suffix, replacement in _STEPS:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + replacement
                break
        else:
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]  # "planned" → "plann" → "plan"
    return word


# Concept → phrases that name it. A phrase is matched on stemmed words, so plurals and
# verb forms match too. Written from the domain (security questionnaires, SIG/CAIQ-style
# questions, commercial RFPs), not from any test question.
CONCEPTS: dict[str, tuple[str, ...]] = {
    "sso": ("sso", "single sign on", "single signon", "saml", "federated authentication",
            "federation", "identity provider", "idp", "okta", "azure ad", "entra id",
            "openid connect", "oidc", "ping identity", "onelogin"),
    "provisioning": ("scim", "provisioning", "deprovisioning", "provision", "deprovision",
                     "user lifecycle", "directory sync"),
    "mfa": ("mfa", "2fa", "two factor", "multi factor", "multifactor", "second factor",
            "totp", "authenticator app", "webauthn", "security key", "hardware key",
            "hardware token", "yubikey", "passkey", "one time password", "otp",
            "strong authentication"),
    "password": ("password", "passwords", "passphrase", "credential", "lockout", "lock out",
                 "brute force", "failed login", "failed sign in", "argon2", "bcrypt"),
    "rbac": ("rbac", "role based access", "least privilege", "permission", "privilege",
             "access control", "user role", "segregation of duties"),
    "encryption": ("encrypt", "encryption", "encrypted", "cipher", "cryptographic",
                   "aes 256", "aes"),
    "at_rest": ("at rest", "data at rest", "stored data", "disk encryption",
                "storage encryption", "encrypted storage"),
    "in_transit": ("in transit", "tls", "ssl", "https", "hsts", "over the network",
                   "in flight", "transport encryption", "mutual tls", "mtls"),
    "keys": ("byok", "bring your own key", "customer managed key", "cmk", "kms",
             "key management", "hsm", "key rotation", "customer held key", "encryption key",
             "cryptographic key", "fips 140"),
    "pentest": ("pen test", "pentest", "penetration test", "penetration testing",
                "ethical hacking", "red team", "security assessment"),
    "vulnerability": ("vulnerability", "vulnerabilities", "patch", "patching", "cve",
                      "security flaw", "bug bounty", "responsible disclosure",
                      "coordinated disclosure", "dependency scanning"),
    "audit_log": ("audit log", "audit trail", "activity log", "event log", "siem", "splunk",
                  "sentinel", "tamper evident", "logging"),
    "incident": ("incident", "incident response", "breach", "data breach", "compromise",
                 "compromised", "breach notification", "security event"),
    "sdlc": ("sdlc", "secure development", "development lifecycle", "code review", "sast",
             "dast", "static analysis", "static code analysis", "threat model",
             "threat modelling", "secure coding"),
    "personnel": ("background check", "background screening", "background verification",
                  "criminal record", "pre employment screening", "security awareness",
                  "awareness training", "confidentiality agreement", "personnel security"),
    "physical": ("physical security", "physical access", "data center", "datacenter",
                 "server room", "facility", "facilities", "colocation", "biometric"),
    "network": ("firewall", "waf", "ddos", "perimeter", "intrusion", "ids", "ips",
                "network segmentation", "segmented", "vpc", "virtual private cloud", "vpn"),
    "tenancy": ("multi tenant", "multitenant", "single tenant", "dedicated instance",
                "tenant", "tenancy", "aws", "azure", "gcp", "cloud provider", "hosting",
                "hosted", "architecture"),
    "gdpr": ("gdpr", "general data protection regulation", "uk gdpr", "data protection",
             "dpa", "data processing agreement", "data processing addendum", "scc",
             "standard contractual clauses", "data subject", "right to erasure", "dpo",
             "data protection officer"),
    "residency": ("data residency", "data location", "data sovereignty", "region", "regions",
                  "geography", "geographic", "country", "countries", "eu", "european union",
                  "frankfurt", "stored where", "where data is stored"),
    "subprocessor": ("subprocessor", "subprocessors", "sub processor", "sub processors",
                     "fourth party", "third party processor"),
    "retention": ("retention", "retain", "retained", "deletion", "delete", "deleted", "purge",
                  "purged", "destroy", "destroyed", "destruction", "erase", "certificate of "
                  "deletion"),
    "ccpa": ("ccpa", "cpra", "california consumer privacy act", "california privacy",
             "sell personal information", "do not sell"),
    "pii": ("pii", "personal data", "personal information", "personally identifiable",
            "pseudonymize", "pseudonymise", "anonymize", "anonymise", "data minimization",
            "data minimisation"),
    "soc2": ("soc 2", "soc2", "soc ii", "type ii", "type 2", "ssae 18", "attestation",
             "trust services criteria", "aicpa"),
    "iso27001": ("iso 27001", "iso27001", "iso iec 27001", "27001", "isms",
                 "information security management system", "iso 27017", "iso 27018"),
    "hipaa": ("hipaa", "phi", "protected health information", "baa",
              "business associate agreement", "healthcare", "health information"),
    "pci": ("pci", "pci dss", "cardholder", "credit card", "payment card", "card data"),
    "accessibility": ("accessibility", "accessible", "wcag", "vpat", "section 508",
                      "screen reader", "disabilities", "disability", "a11y",
                      "keyboard navigation"),
    "uptime": ("sla", "service level agreement", "service level", "uptime", "availability",
               "99 9", "guaranteed availability"),
    "credits": ("service credit", "service credits", "penalty", "penalties", "compensation",
                "refund", "credit back", "fee reduction"),
    "backup": ("backup", "backups", "back up", "backed up", "snapshot", "restore",
               "point in time recovery"),
    "dr": ("disaster recovery", "dr", "bcp", "business continuity", "rto", "rpo",
           "recovery time objective", "recovery point objective", "failover", "fail over",
           "secondary region", "resilience"),
    "maintenance": ("maintenance window", "scheduled maintenance", "planned maintenance",
                    "scheduled downtime", "planned downtime", "status page", "outage history",
                    "maintenance"),
    "performance": ("scalability", "scalable", "scale", "performance", "load test",
                    "load testing", "concurrent users", "page load", "latency", "throughput"),
    "support_hours": ("help desk", "helpdesk", "service desk", "support hours",
                      "hours of support", "24 7", "24x7", "round the clock", "around the clock",
                      "support channel", "phone support", "chat support", "support portal"),
    "severity": ("severity", "priority level", "p1", "sev1", "sev 1", "response time",
                 "first response", "escalation path", "ticket", "tickets", "critical issue"),
    "csm": ("customer success manager", "customer success", "csm", "account manager",
            "technical account manager", "tam", "qbr", "quarterly business review",
            "adoption"),
    "training": ("training", "train", "trainer", "onboarding", "e learning", "elearning",
                 "academy", "course", "courses", "education", "enablement", "user education"),
    "docs": ("documentation", "knowledge base", "help center", "help centre", "user guide",
             "manual", "help article", "help articles", "release notes", "community forum"),
    "pricing": ("pricing", "price", "licensing", "license", "licence", "subscription",
                "per user", "per seat", "seat", "named user", "edition", "editions", "tier",
                "tiers", "cost"),
    "discount": ("discount", "discounts", "volume pricing", "volume discount", "multi year",
                 "two year", "three year", "non profit", "nonprofit", "education",
                 "university", "universities", "commitment"),
    "billing": ("invoice", "invoices", "invoicing", "billing", "billed", "payment terms",
                "net 30", "procurement portal", "ariba", "coupa", "pay", "payment"),
    "renewal": ("renewal", "renew", "auto renew", "automatic renewal", "price increase",
                "uplift", "price cap", "cpi", "consumer price index", "notice period"),
    "trial": ("free trial", "trial", "proof of concept", "poc", "pilot", "evaluate",
              "evaluation", "try before"),
    "implementation": ("implementation", "implement", "deployment", "deploy", "rollout",
                       "roll out", "go live", "golive", "project plan", "methodology",
                       "kickoff", "kick off", "timeline"),
    "migration": ("migration", "migrate", "import", "legacy data", "historical data",
                  "data conversion", "data load", "cut over", "cutover"),
    "sandbox": ("sandbox", "test environment", "non production", "staging", "test instance",
                "uat", "preproduction", "pre production"),
    "configuration": ("configuration", "configure", "configurable", "customization",
                      "customisation", "customize", "customise", "tailor", "no code",
                      "low code", "without code", "custom field", "custom fields"),
    "project_team": ("project team", "project manager", "staffing", "executive sponsor",
                     "solution architect", "resources", "subject matter expert"),
    "company": ("company overview", "company history", "history", "founded", "headquarters",
                "headquartered", "head office", "employees", "headcount", "offices",
                "organization"),
    "financials": ("financial stability", "financial viability", "financially stable",
                   "profitable", "profitability", "revenue", "audited financial",
                   "financial statements", "cash flow", "funding", "investors",
                   "audited accounts"),
    "references": ("reference", "references", "case study", "case studies",
                   "customer reference", "client reference", "reference call"),
    "insurance": ("insurance", "insured", "cyber liability", "errors and omissions", "e o",
                  "general liability", "certificate of insurance", "coverage"),
    "esg": ("sustainability", "sustainable", "esg", "environmental", "carbon", "emissions",
            "renewable energy", "net zero", "climate", "ecovadis", "scope 3"),
    "dei": ("diversity", "diverse", "dei", "inclusion", "inclusive", "equity",
            "diverse supplier", "supplier diversity"),
    "api": ("api", "apis", "rest", "restful", "openapi", "swagger", "endpoint", "endpoints",
            "rate limit", "rate limits", "api token", "programmatic"),
    "webhooks": ("webhook", "webhooks", "callback", "callbacks", "event notification",
                 "push events", "real time notification", "outbound notification"),
    "crm": ("crm", "salesforce", "sfdc", "hubspot", "dynamics 365", "dynamics crm",
            "opportunity", "opportunities"),
    "erp": ("erp", "netsuite", "sap", "s 4hana", "business central", "financial system",
            "accounting system", "billing system", "order to cash"),
    "export": ("export", "exports", "data portability", "portability", "extract",
               "bulk export", "download data", "csv", "json"),
    "mobile": ("mobile", "smartphone", "phone", "phones", "tablet", "tablets", "ios",
               "android", "mobile app", "responsive"),
    "browser": ("browser", "browsers", "chrome", "firefox", "safari", "edge", "plugin",
                "plug in", "plugins", "desktop software"),
    "esign": ("e signature", "esignature", "electronic signature", "digital signature",
              "esign", "esign act", "ueta", "eidas", "legally binding", "pades",
              "signing evidence", "signer"),
    "approvals": ("approval workflow", "approval chain", "approval", "approvals", "approve",
                  "approver", "approvers", "routing", "route", "delegate", "out of office"),
    "docgen": ("document generation", "template", "templates", "merge field",
               "proposal generation", "word template", "generate documents"),
    "reporting": ("report", "reports", "reporting", "dashboard", "dashboards", "analytics",
                  "bi", "tableau", "power bi", "kpi"),
    "localization": ("localization", "localisation", "language", "languages",
                     "multilingual", "currency", "currencies", "multi currency",
                     "translation", "locale"),
    "liability": ("liability", "limitation of liability", "liability cap", "indemnify",
                  "indemnification", "indemnity", "ip infringement", "intellectual property"),
    "termination": ("termination", "terminate", "exit", "exit plan", "exit assistance",
                    "transition", "offboarding", "off boarding", "material breach"),
}


def words(text: str) -> list[str]:
    """Lower-cased words, American spelling, hyphens and slashes as spaces."""
    return [_american(w) for w in _WORD.findall(text.lower())]


def _stems(ws: Iterable[str]) -> list[str]:
    return [stem(w) for w in ws]


def _phrase_index(content_only: bool) -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """First stemmed word of each phrase → (the phrase's stemmed words, concept). With
    ``content_only``, the phrases of two or more content words, stop words left out ("third
    parties that process" still says "third party processor")."""
    index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for concept, phrases in CONCEPTS.items():
        for phrase in phrases:
            ws = words(phrase)
            if content_only:
                ws = [w for w in ws if w not in STOPWORDS]
                if len(ws) < 2:
                    continue
            key = tuple(_stems(ws))
            if key:
                index.setdefault(key[0], []).append((key, concept))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index


_PHRASES = _phrase_index(content_only=False)
_CONTENT_PHRASES = _phrase_index(content_only=True)


def _find(stemmed: Sequence[str], index: dict[str, list[tuple[tuple[str, ...], str]]],
          found: dict[str, None]) -> None:
    for i, w in enumerate(stemmed):
        for phrase, concept in index.get(w, ()):
            if tuple(stemmed[i:i + len(phrase)]) == phrase:
                found[concept] = None


def concepts(ws: Sequence[str]) -> list[str]:
    """The concepts named in a text (its :func:`words`), once each."""
    found: dict[str, None] = {}
    _find(_stems(ws), _PHRASES, found)
    _find(_stems(w for w in ws if w not in STOPWORDS), _CONTENT_PHRASES, found)
    return list(found)


def terms(text: str) -> list[str]:
    """BM25's terms of a text: stemmed content words, then a ``@concept`` token for each
    concept named."""
    ws = words(text)
    stemmed = _stems(ws)
    content = [s for w, s in zip(ws, stemmed, strict=True) if w not in STOPWORDS]
    return content + ["@" + c for c in concepts(ws)]


def query_terms(question: str, limit: int = 40) -> list[str]:
    """Plain words to ask a full-text index for (any of them): the question's content words
    and the phrases of every concept it names, so an item that says "MFA" is a candidate for
    a question that says "two-factor"."""
    ws = words(question)
    found = concepts(ws)
    out: dict[str, None] = {w: None for w in ws if w not in STOPWORDS and len(w) > 1}
    for concept in found:
        for phrase in CONCEPTS[concept]:
            for w in words(phrase):
                if w not in STOPWORDS and len(w) > 1:
                    out[w] = None
    return list(out)[:limit]


def _grams(ws: Iterable[str]) -> Counter[str]:
    grams: Counter[str] = Counter()
    for w in ws:
        padded = f" {w} "
        for n in NGRAMS:
            for i in range(len(padded) - n + 1):
                grams[padded[i:i + n]] += 1
    return grams


@dataclass(frozen=True)
class Candidate:
    """A library item as the ranker sees it."""

    key: Hashable
    """The caller's id for it (a row id, a benchmark key)."""
    title: str
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    key: Hashable
    score: float
    """0 … 1: how well the item answers the question."""
    signals: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0), compare=False)
    """BM25 (saturated), n-gram cosine and concept coverage, each 0 … 1."""


@dataclass
class _Doc:
    key: Hashable
    tf: Counter[str]
    length: int
    concepts: frozenset[str]
    grams: dict[str, float]
    """Each n-gram's ``1 + log(count)``; times its idf (which depends on the other
    candidates) it is the gram's weight."""


@functools.lru_cache(maxsize=2048)
def _analysed(title: str, body: str, tags: tuple[str, ...]
              ) -> tuple[Counter[str], int, frozenset[str], dict[str, float]]:
    """A candidate's term counts, length, concepts and n-grams (with their log-scaled
    counts, the idf-free half of their weight): the same for every question
    (an RFP ranks the same few hundred items for each of its questions), so analysed once
    per text. Read-only: :class:`Index` shares them."""
    tf: Counter[str] = Counter()
    for t in terms(title):
        tf[t] += TITLE_BOOST
    tf.update(terms(" ".join(tags)))
    tf.update(terms(body))
    content = [w for w in words(f"{title} {title} {body}") if w not in STOPWORDS]
    grams = _grams(content)
    return (tf, sum(tf.values()), frozenset(t for t in tf if t.startswith("@")),
            {g: 1 + math.log(k) for g, k in grams.items()})


class Index:
    """The candidates, analysed once; :meth:`rank` then scores any number of questions."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.docs = [_Doc(c.key, *_analysed(c.title, c.body, c.tags)) for c in candidates]
        n = len(self.docs)
        self.avg_len = sum(d.length for d in self.docs) / n if n else 0.0
        df: Counter[str] = Counter()
        gram_df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.tf.keys())
            gram_df.update(d.grams.keys())
        self.idf = {t: math.log(1 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}
        self.gram_idf = {g: math.log((1 + n) / (1 + k)) + 1 for g, k in gram_df.items()}
        # Each document vector's length; its components are computed only where a question
        # has the gram (the cosine needs no more), which keeps an index over fresh
        # candidates cheap to build for every question.
        idf = self.gram_idf
        self._norms = [math.sqrt(sum((w * idf[g]) ** 2 for g, w in d.grams.items())) or 1.0
                       for d in self.docs]

    def _weigh(self, grams: Counter[str]) -> dict[str, float]:
        default = math.log(1 + len(self.docs)) + 1  # a gram no candidate has
        vec = {g: (1 + math.log(k)) * self.gram_idf.get(g, default) for g, k in grams.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {g: v / norm for g, v in vec.items()}

    def _bm25(self, query: Counter[str], doc: _Doc) -> float:
        score = 0.0
        for term, qtf in query.items():
            tf = doc.tf.get(term)
            if not tf:
                continue
            norm = BM25_K1 * (1 - BM25_B + BM25_B * doc.length / (self.avg_len or 1))
            score += qtf * self.idf[term] * tf * (BM25_K1 + 1) / (tf + norm)
        return score

    def rank(self, question: str, limit: int = 5) -> list[Suggestion]:
        """The best ``limit`` candidates for ``question``, best first; ties keep the
        candidates' order. Candidates sharing nothing with the question are left out."""
        qterms = terms(question)
        if not qterms or not self.docs:
            return []
        query = Counter(qterms)
        qconcepts = {t for t in query if t.startswith("@")}
        for t in qconcepts:
            query[t] *= CONCEPT_BOOST
        qvec = self._weigh(_grams(w for w in words(question) if w not in STOPWORDS))
        w_bm, w_gram, w_concept = WEIGHTS
        scored: list[tuple[float, int, Suggestion]] = []
        for i, doc in enumerate(self.docs):
            bm = self._bm25(query, doc)
            if bm <= 0:
                continue
            bm_sat = bm / (bm + BM25_HALF)
            grams, idf = doc.grams, self.gram_idf
            cos = sum(v * grams[g] * idf[g] for g, v in qvec.items() if g in grams) \
                / self._norms[i]
            cover = len(qconcepts & doc.concepts) / len(qconcepts) if qconcepts else 0.0
            w_total = w_bm + w_gram + (w_concept if qconcepts else 0.0)
            score = (w_bm * bm_sat + w_gram * cos + w_concept * cover) / w_total
            scored.append((-score, i, Suggestion(doc.key, round(min(max(score, 0.0), 1.0), 4),
                                                 (bm_sat, cos, cover))))
        scored.sort(key=lambda s: (s[0], s[1]))
        return [s for _, _, s in scored[:limit]]


def rank(question: str, candidates: Sequence[Candidate], limit: int = 5) -> list[Suggestion]:
    """The best ``limit`` of ``candidates`` for ``question`` (see :class:`Index`)."""
    return Index(candidates).rank(question, limit)
