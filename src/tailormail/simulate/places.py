"""Where simulated customers live and what they are called.

Each place carries an IANA timezone that is true of it, a language and a
weight (the share of customers living there), so traits stay consistent:
someone in Bavaria speaks German, lives in Europe/Berlin and has a German name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """A city with its region (state), country, timezone, language and weight."""

    country: str
    state: str
    city: str
    timezone: str
    language: str
    weight: float
    phone_prefix: str


PLACES: tuple[Place, ...] = (
    Place("US", "California", "Los Angeles", "America/Los_Angeles", "en", 9.0, "+1"),
    Place("US", "California", "San Francisco", "America/Los_Angeles", "en", 4.0, "+1"),
    Place("US", "New York", "New York", "America/New_York", "en", 8.0, "+1"),
    Place("US", "Texas", "Austin", "America/Chicago", "en", 4.0, "+1"),
    Place("US", "Texas", "Houston", "America/Chicago", "en", 3.0, "+1"),
    Place("US", "Florida", "Miami", "America/New_York", "en", 4.0, "+1"),
    Place("US", "Illinois", "Chicago", "America/Chicago", "en", 4.0, "+1"),
    Place("US", "Washington", "Seattle", "America/Los_Angeles", "en", 3.0, "+1"),
    Place("US", "Massachusetts", "Boston", "America/New_York", "en", 2.5, "+1"),
    Place("US", "Colorado", "Denver", "America/Denver", "en", 2.0, "+1"),
    Place("US", "Arizona", "Phoenix", "America/Phoenix", "en", 2.0, "+1"),
    Place("US", "Georgia", "Atlanta", "America/New_York", "en", 2.5, "+1"),
    Place("CA", "Ontario", "Toronto", "America/Toronto", "en", 3.0, "+1"),
    Place("CA", "British Columbia", "Vancouver", "America/Vancouver", "en", 1.5, "+1"),
    Place("CA", "Quebec", "Montreal", "America/Toronto", "fr", 1.5, "+1"),
    Place("MX", "Mexico City", "Mexico City", "America/Mexico_City", "es", 2.0, "+52"),
    Place("BR", "São Paulo", "São Paulo", "America/Sao_Paulo", "pt", 2.5, "+55"),
    Place("GB", "England", "London", "Europe/London", "en", 6.0, "+44"),
    Place("GB", "England", "Manchester", "Europe/London", "en", 2.0, "+44"),
    Place("GB", "Scotland", "Edinburgh", "Europe/London", "en", 1.0, "+44"),
    Place("IE", "Leinster", "Dublin", "Europe/Dublin", "en", 1.0, "+353"),
    Place("DE", "Berlin", "Berlin", "Europe/Berlin", "de", 3.0, "+49"),
    Place("DE", "Bavaria", "Munich", "Europe/Berlin", "de", 2.5, "+49"),
    Place("DE", "Hamburg", "Hamburg", "Europe/Berlin", "de", 1.5, "+49"),
    Place("FR", "Île-de-France", "Paris", "Europe/Paris", "fr", 3.5, "+33"),
    Place("FR", "Provence-Alpes-Côte d'Azur", "Marseille", "Europe/Paris", "fr", 1.0, "+33"),
    Place("ES", "Madrid", "Madrid", "Europe/Madrid", "es", 2.0, "+34"),
    Place("ES", "Catalonia", "Barcelona", "Europe/Madrid", "es", 1.5, "+34"),
    Place("IT", "Lombardy", "Milan", "Europe/Rome", "it", 1.5, "+39"),
    Place("IT", "Lazio", "Rome", "Europe/Rome", "it", 1.5, "+39"),
    Place("NL", "North Holland", "Amsterdam", "Europe/Amsterdam", "nl", 1.5, "+31"),
    Place("SE", "Stockholm", "Stockholm", "Europe/Stockholm", "sv", 1.0, "+46"),
    Place("AU", "New South Wales", "Sydney", "Australia/Sydney", "en", 2.5, "+61"),
    Place("AU", "Victoria", "Melbourne", "Australia/Melbourne", "en", 2.0, "+61"),
    Place("JP", "Tokyo", "Tokyo", "Asia/Tokyo", "ja", 2.0, "+81"),
    Place("SG", "Singapore", "Singapore", "Asia/Singapore", "en", 1.0, "+65"),
)
"""Every place a customer can live, with its share of customers."""

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "Olivia",
        "Liam",
        "Emma",
        "Noah",
        "Ava",
        "Oliver",
        "Sophia",
        "James",
        "Isabella",
        "William",
        "Mia",
        "Benjamin",
        "Charlotte",
        "Lucas",
        "Amelia",
        "Henry",
        "Harper",
        "Alexander",
        "Evelyn",
        "Daniel",
        "Grace",
        "Samuel",
        "Chloe",
        "Jack",
        "Emily",
        "Ethan",
        "Hannah",
        "Leo",
        "Zoe",
        "Owen",
    ),
    "de": ("Lena", "Lukas", "Anna", "Leon", "Marie", "Finn", "Sophie", "Jonas", "Emilia", "Paul", "Hanna", "Felix"),
    "fr": ("Léa", "Gabriel", "Chloé", "Louis", "Manon", "Jules", "Camille", "Hugo", "Inès", "Arthur", "Zoé", "Raphaël"),
    "es": ("Lucía", "Hugo", "Sofía", "Mateo", "Martina", "Pablo", "Valeria", "Daniel", "Paula", "Álvaro", "Elena"),
    "pt": ("Ana", "João", "Beatriz", "Pedro", "Mariana", "Gabriel", "Júlia", "Lucas", "Larissa", "Rafael"),
    "it": ("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Alice", "Matteo", "Chiara", "Marco"),
    "nl": ("Emma", "Daan", "Julia", "Sem", "Tess", "Lucas", "Sophie", "Levi", "Fleur", "Jesse"),
    "sv": ("Alice", "William", "Maja", "Elias", "Elsa", "Hugo", "Astrid", "Oscar", "Ebba", "Axel"),
    "ja": ("Yui", "Haruto", "Hina", "Sota", "Aoi", "Ren", "Sakura", "Yuto", "Mei", "Riku"),
}
"""Given names by language."""

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Miller",
        "Davis",
        "Wilson",
        "Taylor",
        "Clark",
        "Lewis",
        "Walker",
        "Hall",
        "Young",
        "King",
        "Wright",
        "Scott",
        "Green",
        "Baker",
        "Adams",
        "Nelson",
        "Hill",
        "Campbell",
        "Mitchell",
        "Roberts",
        "Carter",
        "Phillips",
        "Evans",
        "Turner",
        "Parker",
    ),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"),
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"),
    "es": ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz"),
    "pt": ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima", "Gomes"),
    "it": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco"),
    "nl": (
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "van Dijk",
        "Bakker",
        "Janssen",
        "Visser",
        "Smit",
        "Meijer",
    ),
    "sv": ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson", "Svensson"),
    "ja": ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato"),
}
"""Family names by language."""

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.net", "example.org", "mail.example.com")
"""Reserved example domains (RFC 2606): a simulated address can never reach a real inbox."""
