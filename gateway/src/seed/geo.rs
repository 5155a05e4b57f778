//! Countries, their cities with real postcodes, phone numbering plans and
//! street names.
//!
//! Phone patterns use ranges reserved for fiction where a country has them
//! (UK Ofcom drama numbers, North American 555, Australian ACMA ranges) and
//! valid-looking numbers elsewhere. A pattern is a list of digit groups
//! separated by spaces; each `X` becomes a random digit.

use super::names::Culture;
use super::rng::Rng;

/// The four sales regions. Every country belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    Eu,
    Na,
    Apac,
    Latam,
}

impl Region {
    /// The order in which the first customers cover the regions.
    pub(crate) const ALL: [Region; 4] = [Region::Eu, Region::Na, Region::Apac, Region::Latam];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "EU",
            Region::Na => "NA",
            Region::Apac => "APAC",
            Region::Latam => "LATAM",
        }
    }

    /// Share of customers in the region (out of 100).
    pub(crate) fn weight(self) -> u32 {
        match self {
            Region::Eu => 34,
            Region::Na => 38,
            Region::Apac => 17,
            Region::Latam => 11,
        }
    }
}

/// How a country writes a phone number for domestic use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NationalStyle {
    /// North American: `(415) 555-0132`.
    Nanp,
    /// Trunk prefix glued to the first group, then groups joined by `sep`:
    /// `020 7946 0958`, `03-1234-5678`, `912 345 678` (no trunk).
    Plain {
        trunk: &'static str,
        sep: &'static str,
    },
    /// Brazilian: `(11) 91234-5678`.
    ParenArea,
}

/// A city with a few of its real postcodes and its landline phone patterns.
pub(crate) struct City {
    pub(crate) name: &'static str,
    pub(crate) zips: &'static [&'static str],
    pub(crate) phones: &'static [&'static str],
}

/// Everything the generator needs to make a customer from one country.
pub(crate) struct Country {
    /// ISO 3166-1 alpha-2.
    pub(crate) code: &'static str,
    pub(crate) region: Region,
    /// Share within the region.
    pub(crate) weight: u32,
    /// Country calling code without `+`.
    pub(crate) dial: &'static str,
    pub(crate) national: NationalStyle,
    pub(crate) cultures: &'static [(Culture, u32)],
    pub(crate) cities: &'static [City],
    /// Mobile patterns; empty where mobiles look like landlines (NANP).
    pub(crate) mobiles: &'static [&'static str],
    pub(crate) streets: &'static [&'static str],
    /// Street-line templates: `{n}` house number, `{s}` street, `{u}` unit,
    /// `{l}` letter, `{a}`/`{b}`/`{c}` small numbers (up to 150, 99, 9).
    pub(crate) street_formats: &'static [&'static str],
    /// Local e-mail providers, used alongside the global ones.
    pub(crate) email_domains: &'static [&'static str],
}

impl Country {
    /// A random country of `region`, by weight.
    pub(crate) fn pick_in(region: Region, rng: &mut Rng) -> &'static Country {
        let total: u64 = COUNTRIES
            .iter()
            .filter(|c| c.region == region)
            .map(|c| u64::from(c.weight))
            .sum();
        let mut r = rng.below(total);
        let mut last = &COUNTRIES[0];
        for c in COUNTRIES.iter().filter(|c| c.region == region) {
            let w = u64::from(c.weight);
            if r < w {
                return c;
            }
            r -= w;
            last = c;
        }
        last
    }

    /// A street line such as `221 Baker Street` or `Hauptstraße 12`.
    pub(crate) fn street_line(&self, rng: &mut Rng) -> String {
        let template = *rng.pick(self.street_formats);
        let street = *rng.pick(self.streets);
        let mut out = String::with_capacity(template.len() + street.len() + 8);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let key = rest.as_bytes().get(open + 1).copied().unwrap_or(b'?');
            match key {
                b's' => out.push_str(street),
                b'n' => out.push_str(&house_number(rng).to_string()),
                b'u' => out.push_str(&rng.range(1, 40).to_string()),
                b'l' => out.push(char::from(b'A' + rng.below(6) as u8)),
                b'a' => out.push_str(&rng.range(1, 150).to_string()),
                b'b' => out.push_str(&rng.range(1, 99).to_string()),
                b'c' => out.push_str(&rng.range(1, 9).to_string()),
                _ => {}
            }
            rest = rest.get(open + 3..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

/// House numbers: mostly small, sometimes large (as in North America).
fn house_number(rng: &mut Rng) -> i64 {
    match rng.below(10) {
        0..=5 => rng.range(1, 60),
        6..=8 => rng.range(61, 400),
        _ => rng.range(401, 9999),
    }
}

/// A phone number as digit groups of its national significant number.
#[derive(Clone)]
pub(crate) struct Phone {
    pub(crate) country: &'static Country,
    pub(crate) groups: Vec<String>,
}

impl Phone {
    /// Fills a pattern like `20 7946 0XXX`.
    pub(crate) fn from_pattern(country: &'static Country, pattern: &str, rng: &mut Rng) -> Self {
        let groups = pattern
            .split(' ')
            .map(|g| {
                g.chars()
                    .map(|c| if c == 'X' { rng.digit() } else { c })
                    .collect()
            })
            .collect();
        Self { country, groups }
    }

    /// A number for someone living in `city`: mobile or landline.
    pub(crate) fn random(country: &'static Country, city: &City, rng: &mut Rng) -> Self {
        let pattern = if !country.mobiles.is_empty() && rng.chance(600) {
            *rng.pick(country.mobiles)
        } else {
            *rng.pick(city.phones)
        };
        Self::from_pattern(country, pattern, rng)
    }

    /// E.164: `+442079460958`.
    pub(crate) fn e164(&self) -> String {
        let mut out = format!("+{}", self.country.dial);
        for g in &self.groups {
            out.push_str(g);
        }
        out
    }

    /// International, grouped: `+44 20 7946 0958`.
    pub(crate) fn international(&self, sep: &str) -> String {
        format!("+{} {}", self.country.dial, self.groups.join(sep))
    }

    /// As written at home: `020 7946 0958`, `(415) 555-0132`, `(11) 91234-5678`.
    pub(crate) fn national(&self) -> String {
        let (first, rest) = self
            .groups
            .split_first()
            .map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
        match self.country.national {
            NationalStyle::Nanp | NationalStyle::ParenArea => {
                format!("({first}) {}", rest.join("-"))
            }
            NationalStyle::Plain { trunk, sep } => {
                let mut out = format!("{trunk}{first}");
                for g in rest {
                    out.push_str(sep);
                    out.push_str(g);
                }
                out
            }
        }
    }

    /// One of several ways people type their number into a free-text form.
    pub(crate) fn render_varied(&self, rng: &mut Rng) -> String {
        match rng.below(10) {
            0..=2 => self.national(),
            3..=5 => self.international(" "),
            6 => self.e164(),
            7 => match self.country.national {
                // 415-555-0132
                NationalStyle::Nanp => self.groups.join("-"),
                // 0044 20 7946 0958
                _ => format!("00{} {}", self.country.dial, self.groups.join(" ")),
            },
            8 => match self.country.national {
                NationalStyle::Nanp => self.groups.join("."),
                _ => self.international("-"),
            },
            _ => match self.country.national {
                NationalStyle::Nanp => {
                    format!("+1 ({}) {}", self.groups[0], self.groups[1..].join("-"))
                }
                _ => self.national().replace([' ', '-', '(', ')'], ""),
            },
        }
    }
}

const fn plain(trunk: &'static str, sep: &'static str) -> NationalStyle {
    NationalStyle::Plain { trunk, sep }
}

macro_rules! city {
    ($name:expr, [$($zip:expr),+ $(,)?], [$($phone:expr),+ $(,)?]) => {
        City { name: $name, zips: &[$($zip),+], phones: &[$($phone),+] }
    };
}

const NORTH_AMERICAN_STREETS: &[&str] = &[
    "Main Street",
    "Oak Avenue",
    "Maple Drive",
    "Park Avenue",
    "Elm Street",
    "Cedar Lane",
    "Washington Boulevard",
    "Lakeview Drive",
    "Pine Street",
    "Sunset Boulevard",
    "2nd Avenue",
    "Church Street",
    "Highland Avenue",
    "Willow Way",
];
const BRITISH_STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Green Lane",
    "Mill Road",
    "Park Road",
    "Kings Road",
    "Queen Street",
    "The Crescent",
    "Baker Street",
    "Manor Way",
];
const SPANISH_AMERICAN_FORMATS: &[&str] = &["{s} {n}", "{s} {n}", "{s} {n}, piso {b} dto {l}"];

/// The countries customers come from.
pub(crate) static COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        region: Region::Na,
        weight: 85,
        dial: "1",
        national: NationalStyle::Nanp,
        cultures: &[
            (Culture::Anglo, 60),
            (Culture::Spanish, 15),
            (Culture::Chinese, 5),
            (Culture::Indian, 6),
            (Culture::Korean, 3),
            (Culture::Italian, 4),
            (Culture::German, 4),
            (Culture::Polish, 3),
        ],
        cities: &[
            city!(
                "New York",
                ["10001", "10011", "10025"],
                ["212 555 XXXX", "646 555 XXXX"]
            ),
            city!(
                "San Francisco",
                ["94103", "94110", "94117"],
                ["415 555 XXXX"]
            ),
            city!(
                "Chicago",
                ["60614", "60657", "60607"],
                ["312 555 XXXX", "773 555 XXXX"]
            ),
            city!("Austin", ["78701", "78704", "78745"], ["512 555 XXXX"]),
            city!("Seattle", ["98101", "98103", "98122"], ["206 555 XXXX"]),
            city!("Boston", ["02115", "02116", "02118"], ["617 555 XXXX"]),
            city!("Denver", ["80202", "80205", "80218"], ["303 555 XXXX"]),
            city!("Miami", ["33130", "33131", "33137"], ["305 555 XXXX"]),
            city!(
                "Los Angeles",
                ["90012", "90026", "90034"],
                ["213 555 XXXX", "310 555 XXXX"]
            ),
            city!("Atlanta", ["30303", "30308", "30318"], ["404 555 XXXX"]),
        ],
        mobiles: &[],
        streets: NORTH_AMERICAN_STREETS,
        street_formats: &["{n} {s}", "{n} {s}", "{n} {s}", "{n} {s} Apt {u}{l}"],
        email_domains: &["aol.com", "comcast.net", "att.net"],
    },
    Country {
        code: "CA",
        region: Region::Na,
        weight: 15,
        dial: "1",
        national: NationalStyle::Nanp,
        cultures: &[
            (Culture::Anglo, 55),
            (Culture::French, 25),
            (Culture::Chinese, 8),
            (Culture::Indian, 8),
            (Culture::Italian, 4),
        ],
        cities: &[
            city!(
                "Toronto",
                ["M5V 3L9", "M4W 1A8", "M6J 1H4"],
                ["416 555 XXXX", "647 555 XXXX"]
            ),
            city!(
                "Vancouver",
                ["V6B 1A1", "V5K 0A1", "V6Z 2H7"],
                ["604 555 XXXX"]
            ),
            city!(
                "Montréal",
                ["H2X 1Y4", "H3B 4W8", "H2T 1S8"],
                ["514 555 XXXX"]
            ),
            city!("Calgary", ["T2P 1J9", "T2R 0B4"], ["403 555 XXXX"]),
            city!("Ottawa", ["K1P 5J2", "K2P 1L4"], ["613 555 XXXX"]),
        ],
        mobiles: &[],
        streets: &[
            "Yonge Street",
            "King Street West",
            "rue Saint-Denis",
            "Granville Street",
            "Bank Street",
            "Queen Street East",
            "Maple Avenue",
            "Bloor Street West",
        ],
        street_formats: &["{n} {s}", "{n} {s}", "{u}-{n} {s}"],
        email_domains: &["rogers.com", "shaw.ca", "videotron.ca"],
    },
    Country {
        code: "GB",
        region: Region::Eu,
        weight: 22,
        dial: "44",
        national: plain("0", " "),
        cultures: &[
            (Culture::Anglo, 80),
            (Culture::Indian, 8),
            (Culture::Polish, 5),
            (Culture::Chinese, 3),
            (Culture::Italian, 4),
        ],
        cities: &[
            city!(
                "London",
                ["SW1A 1AA", "EC1A 1BB", "N1 9GU", "SE1 7PB"],
                ["20 7946 0XXX"]
            ),
            city!("Manchester", ["M1 1AE", "M4 5JD"], ["161 496 0XXX"]),
            city!("Liverpool", ["L1 8JQ", "L3 9PP"], ["151 496 0XXX"]),
            city!("Birmingham", ["B1 1BB", "B5 4BU"], ["121 496 0XXX"]),
            city!("Leeds", ["LS1 4DY", "LS2 7EW"], ["113 496 0XXX"]),
            city!("Edinburgh", ["EH1 1YZ", "EH3 9DR"], ["131 496 0XXX"]),
        ],
        mobiles: &["7700 900XXX"],
        streets: BRITISH_STREETS,
        street_formats: &["{n} {s}", "{n} {s}", "Flat {u}, {n} {s}"],
        email_domains: &["btinternet.com", "yahoo.co.uk", "sky.com"],
    },
    Country {
        code: "DE",
        region: Region::Eu,
        weight: 22,
        dial: "49",
        national: plain("0", " "),
        cultures: &[
            (Culture::German, 80),
            (Culture::Polish, 6),
            (Culture::Italian, 6),
            (Culture::Anglo, 3),
            (Culture::Nordic, 2),
            (Culture::French, 3),
        ],
        cities: &[
            city!("Berlin", ["10115", "10178", "10437"], ["30 XXXXXXXX"]),
            city!("Hamburg", ["20095", "20354", "22767"], ["40 XXXXXXXX"]),
            city!("München", ["80331", "80469", "81667"], ["89 XXXXXXXX"]),
            city!("Köln", ["50667", "50674", "50823"], ["221 XXXXXXX"]),
            city!(
                "Frankfurt am Main",
                ["60311", "60313", "60594"],
                ["69 XXXXXXXX"]
            ),
        ],
        mobiles: &["151 XXXXXXXX", "160 XXXXXXX", "170 XXXXXXX", "176 XXXXXXXX"],
        streets: &[
            "Hauptstraße",
            "Bahnhofstraße",
            "Schulstraße",
            "Gartenstraße",
            "Lindenstraße",
            "Bergstraße",
            "Kirchstraße",
            "Goethestraße",
            "Schillerstraße",
            "Friedrichstraße",
        ],
        street_formats: &["{s} {n}", "{s} {n}", "{s} {n}{l}"],
        email_domains: &["gmx.de", "web.de", "t-online.de"],
    },
    Country {
        code: "FR",
        region: Region::Eu,
        weight: 18,
        dial: "33",
        national: plain("0", " "),
        cultures: &[
            (Culture::French, 88),
            (Culture::Spanish, 4),
            (Culture::Italian, 4),
            (Culture::Portuguese, 4),
        ],
        cities: &[
            city!(
                "Paris",
                ["75001", "75011", "75015", "75018"],
                ["1 XX XX XX XX"]
            ),
            city!("Lyon", ["69001", "69003", "69007"], ["4 7X XX XX XX"]),
            city!("Marseille", ["13001", "13006", "13008"], ["4 9X XX XX XX"]),
            city!("Toulouse", ["31000", "31400"], ["5 6X XX XX XX"]),
            city!("Bordeaux", ["33000", "33800"], ["5 5X XX XX XX"]),
            city!("Lille", ["59000", "59800"], ["3 2X XX XX XX"]),
        ],
        mobiles: &["6 XX XX XX XX", "7 XX XX XX XX"],
        streets: &[
            "rue de la Paix",
            "rue Victor Hugo",
            "avenue Jean Jaurès",
            "boulevard Voltaire",
            "rue de la République",
            "rue des Lilas",
            "place de la Mairie",
            "rue Pasteur",
        ],
        street_formats: &["{n} {s}", "{n} {s}", "{n} bis {s}"],
        email_domains: &["orange.fr", "free.fr", "laposte.net"],
    },
    Country {
        code: "ES",
        region: Region::Eu,
        weight: 10,
        dial: "34",
        national: plain("", " "),
        cultures: &[
            (Culture::Spanish, 90),
            (Culture::Anglo, 3),
            (Culture::Italian, 3),
            (Culture::Portuguese, 4),
        ],
        cities: &[
            city!("Madrid", ["28001", "28004", "28013"], ["91X XXX XXX"]),
            city!("Barcelona", ["08001", "08008", "08015"], ["93X XXX XXX"]),
            city!("Valencia", ["46001", "46004"], ["96X XXX XXX"]),
            city!("Sevilla", ["41001", "41004"], ["95X XXX XXX"]),
            city!("Bilbao", ["48001", "48009"], ["94X XXX XXX"]),
        ],
        mobiles: &["6XX XXX XXX", "7XX XXX XXX"],
        streets: &[
            "Calle Mayor",
            "Calle de Alcalá",
            "Avenida de la Constitución",
            "Calle Real",
            "Paseo de Gracia",
            "Calle San Juan",
            "Gran Vía",
        ],
        street_formats: &["{s}, {n}", "{s}, {n}", "{s}, {n}, {b}º {l}"],
        email_domains: &["hotmail.es", "telefonica.net", "yahoo.es"],
    },
    Country {
        code: "IT",
        region: Region::Eu,
        weight: 10,
        dial: "39",
        national: plain("", " "),
        cultures: &[
            (Culture::Italian, 92),
            (Culture::Spanish, 4),
            (Culture::German, 4),
        ],
        cities: &[
            city!("Milano", ["20121", "20123", "20135"], ["02 XXXX XXXX"]),
            city!("Roma", ["00184", "00185", "00153"], ["06 XXXX XXXX"]),
            city!("Napoli", ["80121", "80133"], ["081 XXX XXXX"]),
            city!("Torino", ["10121", "10128"], ["011 XXX XXXX"]),
            city!("Firenze", ["50122", "50123"], ["055 XXX XXXX"]),
            city!("Bologna", ["40121", "40126"], ["051 XXX XXXX"]),
        ],
        mobiles: &["33X XXX XXXX", "34X XXX XXXX", "32X XXX XXXX"],
        streets: &[
            "Via Roma",
            "Via Garibaldi",
            "Corso Vittorio Emanuele",
            "Via Dante",
            "Via Mazzini",
            "Piazza Cavour",
            "Via Verdi",
            "Viale Europa",
        ],
        street_formats: &["{s} {n}", "{s}, {n}"],
        email_domains: &["libero.it", "virgilio.it", "tiscali.it"],
    },
    Country {
        code: "NL",
        region: Region::Eu,
        weight: 7,
        dial: "31",
        national: plain("0", " "),
        cultures: &[
            (Culture::Dutch, 85),
            (Culture::German, 6),
            (Culture::Anglo, 4),
            (Culture::Indian, 3),
            (Culture::Polish, 2),
        ],
        cities: &[
            city!(
                "Amsterdam",
                ["1012 AB", "1017 CE", "1071 XX"],
                ["20 XXX XXXX"]
            ),
            city!("Rotterdam", ["3011 AD", "3012 CN"], ["10 XXX XXXX"]),
            city!("Utrecht", ["3511 LX", "3512 JE"], ["30 XXX XXXX"]),
            city!("Den Haag", ["2511 CV", "2514 EA"], ["70 XXX XXXX"]),
            city!("Eindhoven", ["5611 AZ", "5612 AJ"], ["40 XXX XXXX"]),
        ],
        mobiles: &["6 XXXX XXXX"],
        streets: &[
            "Kerkstraat",
            "Dorpsstraat",
            "Stationsweg",
            "Molenweg",
            "Prinsengracht",
            "Hoofdstraat",
            "Julianalaan",
            "Beatrixstraat",
        ],
        street_formats: &["{s} {n}", "{s} {n}", "{s} {n}-{l}"],
        email_domains: &["ziggo.nl", "kpnmail.nl", "hetnet.nl"],
    },
    Country {
        code: "SE",
        region: Region::Eu,
        weight: 4,
        dial: "46",
        national: plain("0", " "),
        cultures: &[
            (Culture::Nordic, 85),
            (Culture::Polish, 5),
            (Culture::German, 5),
            (Culture::Anglo, 5),
        ],
        cities: &[
            city!(
                "Stockholm",
                ["111 22", "113 45", "118 46"],
                ["8 XXX XXX XX"]
            ),
            city!("Göteborg", ["411 05", "413 01"], ["31 XXX XX XX"]),
            city!("Malmö", ["211 20", "214 22"], ["40 XX XX XX"]),
            city!("Uppsala", ["753 20", "752 37"], ["18 XX XX XX"]),
        ],
        mobiles: &["70 XXX XX XX", "73 XXX XX XX"],
        streets: &[
            "Storgatan",
            "Drottninggatan",
            "Kungsgatan",
            "Skolgatan",
            "Vasagatan",
            "Parkvägen",
            "Ringvägen",
        ],
        street_formats: &["{s} {n}", "{s} {n}{l}"],
        email_domains: &["telia.com", "bredband.net"],
    },
    Country {
        code: "PL",
        region: Region::Eu,
        weight: 4,
        dial: "48",
        national: plain("", " "),
        cultures: &[(Culture::Polish, 95), (Culture::German, 5)],
        cities: &[
            city!("Warszawa", ["00-001", "00-950", "02-495"], ["22 XXX XX XX"]),
            city!("Kraków", ["30-001", "31-042"], ["12 XXX XX XX"]),
            city!("Wrocław", ["50-001", "53-333"], ["71 XXX XX XX"]),
            city!("Gdańsk", ["80-001", "80-855"], ["58 XXX XX XX"]),
            city!("Poznań", ["60-001", "61-758"], ["61 XXX XX XX"]),
        ],
        mobiles: &["5XX XXX XXX", "6XX XXX XXX", "7XX XXX XXX"],
        streets: &[
            "Marszałkowska",
            "Długa",
            "Polna",
            "Lipowa",
            "Mickiewicza",
            "Słowackiego",
            "Kościuszki",
            "Piłsudskiego",
        ],
        street_formats: &["ul. {s} {n}", "ul. {s} {n}/{u}"],
        email_domains: &["wp.pl", "onet.pl", "o2.pl"],
    },
    Country {
        code: "IE",
        region: Region::Eu,
        weight: 3,
        dial: "353",
        national: plain("0", " "),
        cultures: &[
            (Culture::Anglo, 85),
            (Culture::Polish, 10),
            (Culture::Portuguese, 5),
        ],
        cities: &[
            city!(
                "Dublin",
                ["D02 X285", "D04 C932", "D08 VF8H"],
                ["1 XXX XXXX"]
            ),
            city!("Cork", ["T12 W8DR", "T23 R6T9"], ["21 XXX XXXX"]),
            city!("Galway", ["H91 E2K3", "H91 YR2D"], ["91 XXX XXX"]),
            city!("Limerick", ["V94 T9PX", "V94 K7F4"], ["61 XXX XXX"]),
        ],
        mobiles: &["83 XXX XXXX", "85 XXX XXXX", "86 XXX XXXX", "87 XXX XXXX"],
        streets: BRITISH_STREETS,
        street_formats: &["{n} {s}", "Apartment {u}, {n} {s}"],
        email_domains: &["eircom.net"],
    },
    Country {
        code: "JP",
        region: Region::Apac,
        weight: 30,
        dial: "81",
        national: plain("0", "-"),
        cultures: &[(Culture::Japanese, 97), (Culture::Anglo, 3)],
        cities: &[
            city!(
                "Tokyo",
                ["100-0001", "150-0002", "160-0022"],
                ["3 XXXX XXXX"]
            ),
            city!("Osaka", ["530-0001", "542-0081"], ["6 XXXX XXXX"]),
            city!("Yokohama", ["220-0012", "231-0023"], ["45 XXX XXXX"]),
            city!("Nagoya", ["450-0002", "460-0008"], ["52 XXX XXXX"]),
            city!("Sapporo", ["060-0001", "064-0820"], ["11 XXX XXXX"]),
            city!("Fukuoka", ["810-0001", "812-0011"], ["92 XXX XXXX"]),
        ],
        mobiles: &["90 XXXX XXXX", "80 XXXX XXXX", "70 XXXX XXXX"],
        streets: &[
            "Jingumae",
            "Ginza",
            "Umeda",
            "Sakae",
            "Tenjin",
            "Minatomirai",
            "Honcho",
            "Kita",
        ],
        street_formats: &["{c}-{u}-{c} {s}", "{c}-{b}-{u} {s}"],
        email_domains: &["yahoo.co.jp", "docomo.ne.jp", "nifty.com"],
    },
    Country {
        code: "AU",
        region: Region::Apac,
        weight: 25,
        dial: "61",
        national: plain("0", " "),
        cultures: &[
            (Culture::Anglo, 75),
            (Culture::Chinese, 8),
            (Culture::Indian, 7),
            (Culture::Italian, 5),
            (Culture::Korean, 5),
        ],
        cities: &[
            city!("Sydney", ["2000", "2010", "2026"], ["2 5550 XXXX"]),
            city!("Melbourne", ["3000", "3065", "3141"], ["3 7010 XXXX"]),
            city!("Brisbane", ["4000", "4101"], ["7 5550 XXXX"]),
            city!("Perth", ["6000", "6050"], ["8 5550 XXXX"]),
            city!("Adelaide", ["5000", "5067"], ["8 5550 XXXX"]),
        ],
        mobiles: &["491 57X XXX"],
        streets: &[
            "George Street",
            "King Street",
            "Elizabeth Street",
            "Collins Street",
            "Bourke Street",
            "Queen Street",
            "Victoria Parade",
            "Beach Road",
        ],
        street_formats: &["{n} {s}", "{n} {s}", "Unit {u}, {n} {s}"],
        email_domains: &["bigpond.com", "optusnet.com.au"],
    },
    Country {
        code: "IN",
        region: Region::Apac,
        weight: 25,
        dial: "91",
        national: plain("", " "),
        cultures: &[(Culture::Indian, 100)],
        cities: &[
            city!("Mumbai", ["400001", "400050", "400076"], ["22 XXXX XXXX"]),
            city!(
                "New Delhi",
                ["110001", "110016", "110085"],
                ["11 XXXX XXXX"]
            ),
            city!(
                "Bengaluru",
                ["560001", "560034", "560095"],
                ["80 XXXX XXXX"]
            ),
            city!("Chennai", ["600001", "600028"], ["44 XXXX XXXX"]),
            city!("Hyderabad", ["500001", "500081"], ["40 XXXX XXXX"]),
            city!("Pune", ["411001", "411038"], ["20 XXXX XXXX"]),
        ],
        mobiles: &["9XXXX XXXXX", "8XXXX XXXXX", "7XXXX XXXXX", "98XXX XXXXX"],
        streets: &[
            "MG Road",
            "Linking Road",
            "Park Street",
            "Brigade Road",
            "Anna Salai",
            "Nehru Nagar",
            "Gandhi Road",
            "Station Road",
        ],
        street_formats: &["{n}, {s}", "Flat {u}{l}, {n} {s}"],
        email_domains: &["rediffmail.com", "yahoo.co.in"],
    },
    Country {
        code: "SG",
        region: Region::Apac,
        weight: 8,
        dial: "65",
        national: plain("", " "),
        cultures: &[
            (Culture::Chinese, 72),
            (Culture::Indian, 16),
            (Culture::Anglo, 12),
        ],
        cities: &[city!(
            "Singapore",
            ["018956", "238859", "179097", "049315", "528523"],
            ["6XXX XXXX"]
        )],
        mobiles: &["8XXX XXXX", "9XXX XXXX"],
        streets: &[
            "Orchard Road",
            "Tampines Avenue 1",
            "Ang Mo Kio Avenue 3",
            "Bukit Timah Road",
            "Jurong West Street 42",
            "Clementi Avenue 2",
        ],
        street_formats: &["{n} {s}", "Blk {n} {s} #{b}-{u}"],
        email_domains: &["singnet.com.sg"],
    },
    Country {
        code: "KR",
        region: Region::Apac,
        weight: 12,
        dial: "82",
        national: plain("0", "-"),
        cultures: &[(Culture::Korean, 100)],
        cities: &[
            city!("Seoul", ["04524", "06236", "03154"], ["2 XXXX XXXX"]),
            city!("Busan", ["48058", "47285"], ["51 XXX XXXX"]),
            city!("Incheon", ["21554", "22382"], ["32 XXX XXXX"]),
            city!("Daegu", ["41911", "42096"], ["53 XXX XXXX"]),
        ],
        mobiles: &["10 XXXX XXXX"],
        streets: &[
            "Teheran-ro",
            "Gangnam-daero",
            "Sejong-daero",
            "Haeundae-ro",
            "Jong-ro",
            "Olympic-ro",
        ],
        street_formats: &["{a} {s}", "{s} {a}"],
        email_domains: &["naver.com", "daum.net", "kakao.com"],
    },
    Country {
        code: "BR",
        region: Region::Latam,
        weight: 45,
        dial: "55",
        national: NationalStyle::ParenArea,
        cultures: &[
            (Culture::Portuguese, 85),
            (Culture::Italian, 8),
            (Culture::Japanese, 4),
            (Culture::German, 3),
        ],
        // Brazilian mobiles carry the city's area code, so they live here too.
        cities: &[
            city!(
                "São Paulo",
                ["01310-100", "04538-132", "05422-030"],
                ["11 3XXX XXXX", "11 9XXXX XXXX", "11 9XXXX XXXX"]
            ),
            city!(
                "Rio de Janeiro",
                ["20040-020", "22021-001", "22290-160"],
                ["21 2XXX XXXX", "21 9XXXX XXXX", "21 9XXXX XXXX"]
            ),
            city!(
                "Belo Horizonte",
                ["30130-010", "30140-071"],
                ["31 3XXX XXXX", "31 9XXXX XXXX"]
            ),
            city!(
                "Porto Alegre",
                ["90010-150", "90570-020"],
                ["51 3XXX XXXX", "51 9XXXX XXXX"]
            ),
            city!(
                "Curitiba",
                ["80010-000", "80240-210"],
                ["41 3XXX XXXX", "41 9XXXX XXXX"]
            ),
        ],
        mobiles: &[],
        streets: &[
            "Rua Augusta",
            "Avenida Paulista",
            "Rua das Flores",
            "Rua XV de Novembro",
            "Avenida Atlântica",
            "Rua da Consolação",
            "Rua Sete de Setembro",
        ],
        street_formats: &["{s}, {n}", "{s}, {n}", "{s}, {n}, apto {a}"],
        email_domains: &["uol.com.br", "bol.com.br", "terra.com.br"],
    },
    Country {
        code: "MX",
        region: Region::Latam,
        weight: 30,
        dial: "52",
        national: plain("", " "),
        cultures: &[(Culture::Spanish, 100)],
        cities: &[
            city!(
                "Ciudad de México",
                ["06600", "03100", "11560"],
                ["55 XXXX XXXX"]
            ),
            city!("Guadalajara", ["44100", "44600"], ["33 XXXX XXXX"]),
            city!("Monterrey", ["64000", "66220"], ["81 XXXX XXXX"]),
            city!("Puebla", ["72000", "72160"], ["222 XXX XXXX"]),
            city!("Mérida", ["97000", "97100"], ["999 XXX XXXX"]),
        ],
        mobiles: &[],
        streets: &[
            "Avenida Paseo de la Reforma",
            "Calle Madero",
            "Avenida Insurgentes Sur",
            "Calle Hidalgo",
            "Calle Morelos",
            "Avenida Juárez",
        ],
        street_formats: &["{s} {n}", "{s} {n}, int. {u}"],
        email_domains: &["prodigy.net.mx", "hotmail.com.mx"],
    },
    Country {
        code: "AR",
        region: Region::Latam,
        weight: 10,
        dial: "54",
        national: plain("0", " "),
        cultures: &[(Culture::Spanish, 75), (Culture::Italian, 25)],
        cities: &[
            city!(
                "Buenos Aires",
                ["C1002", "C1425", "C1414"],
                ["11 4XXX XXXX"]
            ),
            city!("Córdoba", ["X5000", "X5009"], ["351 4XX XXXX"]),
            city!("Rosario", ["S2000", "S2002"], ["341 4XX XXXX"]),
            city!("Mendoza", ["M5500", "M5502"], ["261 4XX XXXX"]),
        ],
        mobiles: &[],
        streets: &[
            "Avenida Corrientes",
            "Avenida Santa Fe",
            "Calle Florida",
            "Avenida Rivadavia",
            "Calle Lavalle",
            "Avenida Córdoba",
        ],
        street_formats: SPANISH_AMERICAN_FORMATS,
        email_domains: &["fibertel.com.ar", "yahoo.com.ar"],
    },
    Country {
        code: "CO",
        region: Region::Latam,
        weight: 9,
        dial: "57",
        national: plain("", " "),
        cultures: &[(Culture::Spanish, 100)],
        cities: &[
            city!("Bogotá", ["110111", "110221", "111711"], ["601 XXX XXXX"]),
            city!("Medellín", ["050001", "050021"], ["604 XXX XXXX"]),
            city!("Cali", ["760001", "760042"], ["602 XXX XXXX"]),
            city!("Barranquilla", ["080001", "080020"], ["605 XXX XXXX"]),
        ],
        mobiles: &["3XX XXX XXXX"],
        streets: &[
            "Calle 93",
            "Carrera 7",
            "Carrera 15",
            "Calle 85",
            "Avenida 19",
            "Calle 72",
        ],
        street_formats: &["{s} # {a}-{b}", "{s} # {a}-{b}, apto {a}"],
        email_domains: &["une.net.co"],
    },
    Country {
        code: "CL",
        region: Region::Latam,
        weight: 6,
        dial: "56",
        national: plain("", " "),
        cultures: &[(Culture::Spanish, 95), (Culture::German, 5)],
        cities: &[
            city!(
                "Santiago",
                ["8320000", "7500000", "7550000"],
                ["2 2XXX XXXX"]
            ),
            city!("Valparaíso", ["2340000", "2390000"], ["32 2XX XXXX"]),
            city!("Concepción", ["4030000", "4070000"], ["41 2XX XXXX"]),
        ],
        mobiles: &["9 XXXX XXXX"],
        streets: &[
            "Avenida Providencia",
            "Avenida Apoquindo",
            "Calle Huérfanos",
            "Avenida Libertador Bernardo O'Higgins",
            "Calle Merced",
        ],
        street_formats: &["{s} {n}", "{s} {n}, depto {a}"],
        email_domains: &["vtr.net", "entelchile.net"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        for region in Region::ALL {
            assert!(COUNTRIES.iter().any(|c| c.region == region));
        }
        for c in COUNTRIES {
            assert_eq!(c.code.len(), 2);
            assert!(!c.cities.is_empty() && !c.streets.is_empty() && !c.cultures.is_empty());
            for f in c.street_formats {
                // Only single-letter placeholders that `street_line` knows.
                let mut rest = *f;
                while let Some(open) = rest.find('{') {
                    assert!("snulabc".contains(&rest[open + 1..open + 2]), "{f}");
                    assert_eq!(&rest[open + 2..open + 3], "}", "{f}");
                    rest = &rest[open + 3..];
                }
            }
            let patterns = c
                .cities
                .iter()
                .flat_map(|city| city.phones.iter())
                .chain(c.mobiles);
            for p in patterns {
                assert!(
                    p.chars()
                        .all(|ch| ch.is_ascii_digit() || ch == 'X' || ch == ' '),
                    "{p}"
                );
            }
            for city in c.cities {
                assert!(
                    !city.zips.is_empty() && !city.phones.is_empty(),
                    "{}",
                    city.name
                );
            }
        }
    }

    #[test]
    fn phone_formats() {
        let gb = COUNTRIES.iter().find(|c| c.code == "GB").unwrap();
        let mut rng = Rng::from_seed(1);
        let phone = Phone::from_pattern(gb, "20 7946 0958", &mut rng);
        assert_eq!(phone.e164(), "+442079460958");
        assert_eq!(phone.international(" "), "+44 20 7946 0958");
        assert_eq!(phone.national(), "020 7946 0958");
        let us = COUNTRIES.iter().find(|c| c.code == "US").unwrap();
        let phone = Phone::from_pattern(us, "415 555 0132", &mut rng);
        assert_eq!(phone.national(), "(415) 555-0132");
        assert_eq!(phone.e164(), "+14155550132");
        let br = COUNTRIES.iter().find(|c| c.code == "BR").unwrap();
        let phone = Phone::from_pattern(br, "11 91234 5678", &mut rng);
        assert_eq!(phone.national(), "(11) 91234-5678");
        let jp = COUNTRIES.iter().find(|c| c.code == "JP").unwrap();
        let phone = Phone::from_pattern(jp, "3 1234 5678", &mut rng);
        assert_eq!(phone.national(), "03-1234-5678");
    }
}
