//! Row generation, independent of any database.
//!
//! [`DemoDataset`] knows how many rows each table gets and produces them, one
//! table at a time, as slices of [`Value`]s. Backends (SQLite here, PostgreSQL
//! later) only have to insert what they are handed.
//!
//! Every entity draws from its own random stream (see [`Stream`]), so any row
//! can be regenerated from its id alone. Events, tickets, reviews and payments
//! use that to refer to real orders (same customer, same products, plausible
//! times) without keeping all orders in memory. What is kept in memory is
//! small: per customer the sign-up time, activity weight, region, preferred
//! browser and e-mail; per product the price and popularity.

use std::collections::HashSet;
use std::ops::Range;

use super::catalog::{Category, Variants, ADJECTIVES, BRANDS, CATEGORIES, COLOURS, PACKS, SIZES};
use super::geo::{City, Country, Phone, Region};
use super::names::{ascii_slug, feminine_surname, Culture};
use super::rng::{key, pick_cumulative, Rng, SplitMix64, Stream};
use super::texts::{
    Facts, PiiSpan, TicketKind, CLOSINGS, GREETINGS, REVIEW_NEGATIVE, REVIEW_NEUTRAL,
    REVIEW_PII_TAILS, REVIEW_POSITIVE, TICKET_TEMPLATES,
};
use super::SeedError;
use crate::civil::{
    date_of, days_in_month, iso_date, rfc3339, ACTIVITY_START, DAY, MONTH_NAMES, SIGNUP_START,
    WINDOW_END,
};

/// One column value of a generated row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (ids, cents, counts, flags).
    Integer(i64),
    /// UTF-8 text (timestamps are RFC 3339 text, dates `YYYY-MM-DD`).
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        // Ids and counts are far below i64::MAX (scale is capped at 100).
        Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The tables of the demo store, in creation (and generation) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemoTable {
    Customers,
    Products,
    Orders,
    OrderItems,
    Payments,
    Events,
    SupportTickets,
    Reviews,
}

impl DemoTable {
    /// All tables, parents before children.
    pub const ALL: [DemoTable; 8] = [
        DemoTable::Customers,
        DemoTable::Products,
        DemoTable::Orders,
        DemoTable::OrderItems,
        DemoTable::Payments,
        DemoTable::Events,
        DemoTable::SupportTickets,
        DemoTable::Reviews,
    ];

    /// The SQL table name.
    pub const fn name(self) -> &'static str {
        match self {
            DemoTable::Customers => "customers",
            DemoTable::Products => "products",
            DemoTable::Orders => "orders",
            DemoTable::OrderItems => "order_items",
            DemoTable::Payments => "payments",
            DemoTable::Events => "events",
            DemoTable::SupportTickets => "support_tickets",
            DemoTable::Reviews => "reviews",
        }
    }

    /// Column names in schema order; generated rows follow this order.
    pub const fn columns(self) -> &'static [&'static str] {
        match self {
            DemoTable::Customers => &[
                "id",
                "email",
                "full_name",
                "phone",
                "birth_date",
                "gender",
                "zip",
                "city",
                "country",
                "region",
                "created_at",
                "marketing_opt_in",
                // The blind index of the encrypted phone, filled in by the
                // store writer (the generator deals in plaintext).
                "phone_bidx",
            ],
            DemoTable::Products => &["id", "sku", "name", "category", "brand", "price_cents"],
            DemoTable::Orders => &[
                "id",
                "customer_id",
                "created_at",
                "status",
                "total_cents",
                "shipping_address",
                "shipping_zip",
            ],
            DemoTable::OrderItems => &["order_id", "product_id", "quantity", "unit_price_cents"],
            DemoTable::Payments => &[
                "id",
                "order_id",
                "card_number",
                "card_last4",
                "amount_cents",
                "created_at",
            ],
            DemoTable::Events => &[
                "id",
                "customer_id",
                "product_id",
                "kind",
                "ts",
                "session_id",
                "ip_address",
                "user_agent",
            ],
            DemoTable::SupportTickets => &[
                "id",
                "customer_id",
                "created_at",
                "subject",
                "body",
                "status",
            ],
            DemoTable::Reviews => &["id", "customer_id", "product_id", "rating", "body"],
        }
    }

    const fn index(self) -> usize {
        self as usize
    }

    /// Rows at scale 1 for the tables whose size is set directly; the others
    /// (order_items, payments) follow from the orders.
    const fn base_rows(self) -> Option<u64> {
        match self {
            DemoTable::Customers => Some(5_000),
            DemoTable::Products => Some(500),
            DemoTable::Orders => Some(50_000),
            DemoTable::Events => Some(250_000),
            DemoTable::SupportTickets => Some(2_000),
            DemoTable::Reviews => Some(10_000),
            DemoTable::OrderItems | DemoTable::Payments => None,
        }
    }
}

/// `max(1, round(base * scale))`.
fn scaled(base: u64, scale: f64) -> u64 {
    // Exact for every base and scale we accept (results stay far below 2^53).
    ((base as f64 * scale).round() as u64).max(1)
}

/// Rejects scales outside `(0, 100]`, NaN and infinities.
pub(crate) fn validate_scale(scale: f64) -> Result<(), SeedError> {
    if scale.is_finite() && scale > 0.0 && scale <= 100.0 {
        Ok(())
    } else {
        Err(SeedError::BadScale(scale))
    }
}

const ACTIVITY_SPAN: i64 = WINDOW_END + 1 - ACTIVITY_START;
const SIGNUP_SPAN: i64 = WINDOW_END + 1 - SIGNUP_START;

/// The `index`-th (1-based) of `count` timestamps spread evenly over
/// `[start, start + span)`, jittered within its slot by at most `max_jitter`.
/// Increasing ids therefore get non-decreasing times, like autoincrement ids.
fn slot_time(start: i64, span: i64, index: u64, count: u64, max_jitter: i64, rng: &mut Rng) -> i64 {
    let count = count.max(1) as i64;
    let slot = (span / count).max(1);
    let jitter = rng.below(slot.min(max_jitter).max(1) as u64) as i64;
    start + (index as i64 - 1) * span / count + jitter
}

/// A generated support ticket, before it becomes a row.
struct Ticket {
    customer_id: u64,
    created_at: i64,
    subject: String,
    body: String,
    status: &'static str,
}

/// A generated review, before it becomes a row.
struct Review {
    customer_id: u64,
    product_id: u64,
    rating: i64,
    body: String,
}

/// A customer, regenerated from their id.
struct Customer {
    country: &'static Country,
    city: &'static City,
    zip: &'static str,
    street: String,
    first: &'static str,
    last: String,
    full_name: String,
    gender: Option<&'static str>,
    birth: (i64, u32, u32),
    phone: Option<Phone>,
    created_at: i64,
    marketing_opt_in: bool,
    activity: u32,
    email_local: String,
    email_domain: &'static str,
    agent: u8,
}

/// A catalog product, regenerated from its id.
struct Product {
    sku: String,
    name: String,
    category: &'static Category,
    brand: &'static str,
    price_cents: i64,
    popularity: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct OrderItem {
    product: u64,
    quantity: i64,
    unit_price_cents: i64,
}

/// An order with its items, regenerated from its id.
struct Order {
    id: u64,
    customer: u64,
    created_at: i64,
    status: &'static str,
    items: [OrderItem; 4],
    len: usize,
    card_index: u64,
}

impl Order {
    fn items(&self) -> &[OrderItem] {
        &self.items[..self.len]
    }

    fn total_cents(&self) -> i64 {
        self.items()
            .iter()
            .map(|i| i.quantity * i.unit_price_cents)
            .sum()
    }

    /// When the card was charged: moments after checkout.
    fn paid_at(&self, seed: u64) -> i64 {
        let mut rng = Rng::for_entity(seed, Stream::Payment, self.id);
        (self.created_at + rng.range(2, 300)).min(WINDOW_END)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    View,
    Search,
    AddToCart,
    Wishlist,
    Purchase,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Search => "search",
            EventKind::AddToCart => "add_to_cart",
            EventKind::Wishlist => "wishlist",
            EventKind::Purchase => "purchase",
        }
    }
}

/// A deterministic synthetic commerce data set for one `(scale, seed)`.
///
/// Construction does a quick pass over customers, products and orders to
/// learn what later tables refer to; the rows themselves are produced on
/// demand by [`DemoDataset::for_each_row`].
pub struct DemoDataset {
    seed: u64,
    counts: [u64; 8],
    /// Sign-up time per customer (index = id - 1); non-decreasing.
    customer_created: Vec<i64>,
    /// Inclusive prefix sums of the customers' activity weights.
    customer_activity: Vec<u64>,
    customer_region: Vec<Region>,
    customer_agent: Vec<u8>,
    /// De-duplicated e-mail addresses.
    customer_email: Vec<String>,
    /// Inclusive prefix sums of the products' popularity.
    product_popularity: Vec<u64>,
    product_price: Vec<i64>,
}

impl DemoDataset {
    /// Plans the data set. Fails only on a bad scale (see [`SeedError::BadScale`]).
    pub fn new(scale: f64, seed: u64) -> Result<Self, SeedError> {
        validate_scale(scale)?;
        let mut counts = [0; 8];
        for table in DemoTable::ALL {
            if let Some(base) = table.base_rows() {
                counts[table.index()] = scaled(base, scale);
            }
        }
        let mut ds = DemoDataset {
            seed,
            counts,
            customer_created: Vec::new(),
            customer_activity: Vec::new(),
            customer_region: Vec::new(),
            customer_agent: Vec::new(),
            customer_email: Vec::new(),
            product_popularity: Vec::new(),
            product_price: Vec::new(),
        };

        let n_customers = ds.count(DemoTable::Customers);
        let mut seen = HashSet::with_capacity(n_customers as usize);
        let mut activity_total = 0u64;
        for id in 1..=n_customers {
            let c = ds.customer(id);
            ds.customer_created.push(c.created_at);
            activity_total += u64::from(c.activity);
            ds.customer_activity.push(activity_total);
            ds.customer_region.push(c.country.region);
            ds.customer_agent.push(c.agent);
            // "Add a number when needed": john.smith@, john.smith2@, ...
            let mut email = format!("{}@{}", c.email_local, c.email_domain);
            let mut n = 2;
            while !seen.insert(email.clone()) {
                email = format!("{}{n}@{}", c.email_local, c.email_domain);
                n += 1;
            }
            ds.customer_email.push(email);
        }

        let mut popularity_total = 0u64;
        for id in 1..=ds.count(DemoTable::Products) {
            let p = ds.product(id);
            popularity_total += u64::from(p.popularity);
            ds.product_popularity.push(popularity_total);
            ds.product_price.push(p.price_cents);
        }

        let n_orders = ds.count(DemoTable::Orders);
        let items: u64 = (1..=n_orders).map(|id| ds.order(id).len as u64).sum();
        ds.counts[DemoTable::OrderItems.index()] = items;
        ds.counts[DemoTable::Payments.index()] = n_orders;
        Ok(ds)
    }

    /// The number of rows `table` gets.
    pub fn row_count(&self, table: DemoTable) -> u64 {
        self.counts[table.index()]
    }

    /// The number of rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn count(&self, table: DemoTable) -> u64 {
        self.counts[table.index()]
    }

    /// Calls `sink` with every row of `table` in id order (order items grouped
    /// by order) and returns the number of rows. Stops at the first error.
    pub fn for_each_row<E>(
        &self,
        table: DemoTable,
        mut sink: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut row = Vec::with_capacity(table.columns().len());
        let mut emitted = 0u64;
        let mut emit = |row: &mut Vec<Value>| -> Result<(), E> {
            debug_assert_eq!(row.len(), table.columns().len(), "{}", table.name());
            sink(row)?;
            row.clear();
            emitted += 1;
            Ok(())
        };
        // Order items are generated order by order.
        let ids = match table {
            DemoTable::OrderItems => self.count(DemoTable::Orders),
            _ => self.count(table),
        };
        for id in 1..=ids {
            match table {
                DemoTable::Customers => self.customer_row(id, &mut row),
                DemoTable::Products => self.product_row(id, &mut row),
                DemoTable::Orders => self.order_row(id, &mut row),
                DemoTable::OrderItems => {
                    let order = self.order(id);
                    for item in order.items() {
                        row.extend([
                            Value::from(id),
                            item.product.into(),
                            item.quantity.into(),
                            item.unit_price_cents.into(),
                        ]);
                        emit(&mut row)?;
                    }
                    continue;
                }
                DemoTable::Payments => self.payment_row(id, &mut row),
                DemoTable::Events => self.event_row(id, &mut row),
                DemoTable::SupportTickets => self.ticket_row(id, &mut row),
                DemoTable::Reviews => self.review_row(id, &mut row),
            }
            emit(&mut row)?;
        }
        Ok(emitted)
    }

    // ---- customers -------------------------------------------------------

    fn customer(&self, id: u64) -> Customer {
        let mut rng = Rng::for_entity(self.seed, Stream::Customer, id);
        // The first four customers cover every region, so even the smallest
        // data set has all of them.
        let region = match id {
            1..=4 => Region::ALL[id as usize - 1],
            _ => *rng.pick_weighted_by(&Region::ALL, |r| r.weight()),
        };
        let country = Country::pick_in(region, &mut rng);
        let city = rng.pick(country.cities);
        let zip = *rng.pick(city.zips);
        let culture = *rng.pick_weighted(country.cultures);
        let pool = culture.pool();

        let gender = *rng.pick_weighted(&[
            (Some("female"), 47),
            (Some("male"), 46),
            (Some("nonbinary"), 3),
            (None, 4),
        ]);
        let female = match gender {
            Some("female") => true,
            Some("male") => false,
            _ => rng.chance(500),
        };
        let first = *rng.pick(if female { pool.female } else { pool.male });
        let mut last = (*rng.pick(pool.last)).to_owned();
        if culture == Culture::Polish && female {
            last = feminine_surname(&last);
        }
        let mut full_name = format!("{first} {last}");
        if culture == Culture::Spanish && rng.chance(300) {
            // Paternal and maternal surname: "María García López".
            full_name.push(' ');
            let second = *rng.pick(pool.last);
            full_name.push_str(second);
        }

        let n = self.count(DemoTable::Customers);
        // At most 30 days of jitter keeps the very first customer well before
        // the first order even when there is only one customer.
        let created_at = slot_time(SIGNUP_START, SIGNUP_SPAN, id, n, 30 * DAY, &mut rng);

        // Adults, mostly 25-54, aged 18-81 at sign-up so at most 85 by the
        // end of the window.
        let age = match *rng.pick_weighted(&[(0u8, 15), (1, 28), (2, 24), (3, 16), (4, 10), (5, 7)])
        {
            0 => rng.range(18, 24),
            1 => rng.range(25, 34),
            2 => rng.range(35, 44),
            3 => rng.range(45, 54),
            4 => rng.range(55, 64),
            _ => rng.range(65, 80),
        };
        let birth_year = date_of(created_at).0 - age - 1;
        let birth_month = rng.range(1, 12) as u32;
        let birth_day = rng.range(1, i64::from(days_in_month(birth_year, birth_month))) as u32;

        let phone = rng
            .chance(920)
            .then(|| Phone::random(country, city, &mut rng));
        let marketing_opt_in = rng.chance(600);
        // Casual, regular and power shoppers: the top 5% place almost a third
        // of all orders.
        let activity = match rng.below(100) {
            0..=69 => rng.range(1, 3),
            70..=94 => rng.range(4, 10),
            _ => rng.range(12, 40),
        } as u32;
        let (email_local, email_domain) = email_parts(first, &last, birth_year, country, &mut rng);
        let street = country.street_line(&mut rng);
        let agent = rng.below(USER_AGENTS.len() as u64) as u8;

        Customer {
            country,
            city,
            zip,
            street,
            first,
            last,
            full_name,
            gender,
            birth: (birth_year, birth_month, birth_day),
            phone,
            created_at,
            marketing_opt_in,
            activity,
            email_local,
            email_domain,
            agent,
        }
    }

    fn customer_row(&self, id: u64, row: &mut Vec<Value>) {
        let c = self.customer(id);
        row.extend([
            Value::from(id),
            self.email(id).into(),
            c.full_name.into(),
            c.phone.map(|p| p.e164()).into(),
            iso_date(c.birth).into(),
            c.gender.into(),
            c.zip.into(),
            c.city.name.into(),
            c.country.code.into(),
            c.country.region.as_str().into(),
            rfc3339(c.created_at).into(),
            i64::from(c.marketing_opt_in).into(),
            Value::Null,
        ]);
    }

    fn email(&self, customer: u64) -> &str {
        &self.customer_email[customer as usize - 1]
    }

    /// A customer who has signed up by `t`, weighted by activity.
    fn active_customer_at(&self, t: i64, rng: &mut Rng) -> u64 {
        let eligible = self.customer_created.partition_point(|&c| c <= t);
        1 + pick_cumulative(rng, &self.customer_activity, eligible) as u64
    }

    // ---- products ---------------------------------------------------------

    fn product(&self, id: u64) -> Product {
        let mut rng = Rng::for_entity(self.seed, Stream::Product, id);
        let category = rng.pick_weighted_by(CATEGORIES, |c| c.weight);
        let brand = *rng.pick(BRANDS);
        let adjective = *rng.pick(ADJECTIVES);
        let noun = *rng.pick(category.nouns);
        let mut name = format!("{brand} {adjective} {noun}");
        if rng.chance(450) {
            match category.variants {
                Variants::Colours => {
                    name.push_str(" – ");
                    let colour = *rng.pick(COLOURS);
                    name.push_str(colour);
                }
                Variants::Sizes => {
                    name.push_str(", Size ");
                    let size = *rng.pick(SIZES);
                    name.push_str(size);
                }
                Variants::Packs => {
                    name.push_str(" (");
                    let pack = *rng.pick(PACKS);
                    name.push_str(pack);
                    name.push(')');
                }
                Variants::None => {}
            }
        }
        let units = rng.range(category.price_units.0, category.price_units.1);
        // Shop prices end in .99, .95, .00 or .49.
        let price_cents = match rng.below(20) {
            0..=11 => units * 100 - 1,
            12..=14 => units * 100 - 5,
            15..=17 => units * 100,
            _ => units * 100 - 51,
        };
        let brand_code: String = ascii_slug(brand).chars().take(3).collect();
        let sku = format!("{}-{}-{id:05}", category.code, brand_code.to_uppercase());
        // Zipf-like popularity: a few best sellers, a long tail.
        let popularity = 1 + 2000 / (1 + rng.below(200) as u32);
        Product {
            sku,
            name,
            category,
            brand,
            price_cents,
            popularity,
        }
    }

    fn product_row(&self, id: u64, row: &mut Vec<Value>) {
        let p = self.product(id);
        row.extend([
            Value::from(id),
            p.sku.into(),
            p.name.into(),
            p.category.name.into(),
            p.brand.into(),
            p.price_cents.into(),
        ]);
    }

    fn popular_product(&self, rng: &mut Rng) -> u64 {
        1 + pick_cumulative(rng, &self.product_popularity, self.product_popularity.len()) as u64
    }

    // ---- orders, items, payments --------------------------------------------

    /// The customer who placed order `id` (and whose card paid for it).
    pub fn order_customer(&self, id: u64) -> u64 {
        self.order(id).customer
    }

    fn order(&self, id: u64) -> Order {
        let mut rng = Rng::for_entity(self.seed, Stream::Order, id);
        let n = self.count(DemoTable::Orders);
        let created_at = slot_time(ACTIVITY_START, ACTIVITY_SPAN, id, n, i64::MAX, &mut rng);
        let customer = self.active_customer_at(created_at, &mut rng);

        let n_products = self.product_price.len();
        let wanted = *rng.pick_weighted(&[(1usize, 45), (2, 30), (3, 15), (4, 10)]);
        let len = wanted.min(n_products);
        let mut items = [OrderItem::default(); 4];
        for i in 0..len {
            let mut product = self.popular_product(&mut rng);
            let taken = |p: u64, items: &[OrderItem]| items.iter().any(|it| it.product == p);
            let mut tries = 0;
            while taken(product, &items[..i]) && tries < 8 {
                product = self.popular_product(&mut rng);
                tries += 1;
            }
            // Best sellers can keep colliding in tiny catalogs: take the next free id.
            while taken(product, &items[..i]) {
                product = product % n_products as u64 + 1;
            }
            let quantity = *rng.pick_weighted(&[(1i64, 80), (2, 14), (3, 4), (4, 1), (5, 1)]);
            let list_price = self.product_price[product as usize - 1];
            let unit_price_cents = if rng.chance(120) {
                // A promotion: 10-25% off.
                list_price * (100 - 5 * rng.range(2, 5)) / 100
            } else {
                list_price
            };
            items[i] = OrderItem {
                product,
                quantity,
                unit_price_cents,
            };
        }

        // The window's end is "now": recent orders are still in flight.
        let age = WINDOW_END - created_at;
        let status = *rng.pick_weighted(match age {
            a if a < DAY => &[("placed", 40), ("paid", 50), ("cancelled", 10)][..],
            a if a < 4 * DAY => &[("paid", 30), ("shipped", 60), ("cancelled", 10)],
            a if a < 10 * DAY => &[("shipped", 55), ("delivered", 40), ("cancelled", 5)],
            _ => &[("delivered", 87), ("cancelled", 5), ("returned", 8)],
        });
        let card_index = rng.below(self.card_count(customer));
        Order {
            id,
            customer,
            created_at,
            status,
            items,
            len,
            card_index,
        }
    }

    /// The index of the order placed around `t`.
    fn order_index_at(&self, t: i64) -> u64 {
        let n = self.count(DemoTable::Orders);
        let offset = (t - ACTIVITY_START).clamp(0, ACTIVITY_SPAN - 1);
        (offset as u64 * n / ACTIVITY_SPAN as u64 + 1).clamp(1, n)
    }

    /// Street line, city and postcode the order ships to: mostly home,
    /// sometimes a gift to someone elsewhere in the country.
    fn shipping(&self, order: &Order, customer: &Customer) -> (String, &'static str) {
        let mut rng = Rng::for_entity(self.seed, Stream::OrderAddress, order.id);
        if rng.below(1000) < 850 {
            (
                format!("{}, {}", customer.street, customer.city.name),
                customer.zip,
            )
        } else {
            let city = rng.pick(customer.country.cities);
            let zip = *rng.pick(city.zips);
            (
                format!("{}, {}", customer.country.street_line(&mut rng), city.name),
                zip,
            )
        }
    }

    fn order_row(&self, id: u64, row: &mut Vec<Value>) {
        let order = self.order(id);
        let customer = self.customer(order.customer);
        let (address, zip) = self.shipping(&order, &customer);
        row.extend([
            Value::from(id),
            order.customer.into(),
            rfc3339(order.created_at).into(),
            order.status.into(),
            order.total_cents().into(),
            address.into(),
            zip.into(),
        ]);
    }

    fn payment_row(&self, id: u64, row: &mut Vec<Value>) {
        // One payment per order, sharing its id.
        let order = self.order(id);
        let card = self.card_number(order.customer, order.card_index);
        let last4 = card[card.len() - 4..].to_owned();
        row.extend([
            Value::from(id),
            id.into(),
            card.into(),
            last4.into(),
            order.total_cents().into(),
            rfc3339(order.paid_at(self.seed)).into(),
        ]);
    }

    /// How many cards a customer pays with.
    fn card_count(&self, customer: u64) -> u64 {
        let mut rng = Rng::for_entity(self.seed, Stream::CardCount, customer);
        *rng.pick_weighted(&[(1, 70), (2, 25), (3, 5)])
    }

    /// The customer's `index`-th card: 16 digits, Luhn-valid, Visa or
    /// Mastercard (51-55 or 2221-2720) prefix.
    fn card_number(&self, customer: u64, index: u64) -> String {
        let mut rng = Rng::for_entity(self.seed, Stream::Card, customer * 4 + index);
        let mut digits: Vec<u8> = match rng.below(10) {
            0..=5 => vec![4],
            6..=8 => vec![5, rng.range(1, 5) as u8],
            _ => {
                let p = rng.range(2221, 2720) as u16;
                vec![
                    (p / 1000) as u8,
                    (p / 100 % 10) as u8,
                    (p / 10 % 10) as u8,
                    (p % 10) as u8,
                ]
            }
        };
        while digits.len() < 15 {
            digits.push(rng.below(10) as u8);
        }
        digits.push(luhn_check_digit(&digits));
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    // ---- events -------------------------------------------------------------

    fn event_row(&self, id: u64, row: &mut Vec<Value>) {
        let mut rng = Rng::for_entity(self.seed, Stream::Event, id);
        let n = self.count(DemoTable::Events);
        let t = slot_time(ACTIVITY_START, ACTIVITY_SPAN, id, n, i64::MAX, &mut rng);
        let mut kind = *rng.pick_weighted(&[
            (EventKind::View, 50),
            (EventKind::Search, 14),
            (EventKind::AddToCart, 14),
            (EventKind::Wishlist, 6),
            (EventKind::Purchase, 16),
        ]);
        let tied_to_order = match kind {
            EventKind::Purchase => true,
            EventKind::Search => false,
            _ => rng.chance(550),
        };

        let (customer, product, ts, session_key) = if tied_to_order {
            // The funnel of a real order: views and cart adds shortly before
            // it, the purchase at checkout, all in the order's session.
            let n_orders = self.count(DemoTable::Orders);
            let j = (self.order_index_at(t) + rng.below(3)).min(n_orders);
            let order = self.order(j);
            let item = order.items()[rng.below(order.len as u64) as usize];
            if kind == EventKind::Purchase && order.status == "cancelled" {
                kind = EventKind::AddToCart;
            }
            let before = match kind {
                EventKind::Purchase => 0,
                EventKind::AddToCart => rng.range(30, 1800),
                EventKind::Wishlist => rng.range(3600, 14 * DAY),
                _ => rng.range(60, 3 * 3600),
            };
            // Not before the window, nor before the customer signed up.
            let signed_up = self.customer_created[order.customer as usize - 1];
            let ts = (order.created_at - before)
                .max(ACTIVITY_START)
                .max(signed_up);
            // Wishlisting happens in an earlier visit.
            let session = order.id * 2 + u64::from(kind == EventKind::Wishlist);
            (Some(order.customer), Some(item.product), ts, session)
        } else {
            // Browsing: active customers browse more; some visitors are not
            // logged in.
            let customer = (!rng.chance(150)).then(|| self.active_customer_at(t, &mut rng));
            let product = (kind != EventKind::Search).then(|| self.popular_product(&mut rng));
            let day = ((t - ACTIVITY_START) / DAY) as u64;
            let session = match customer {
                Some(c) => (1 << 62) | (c << 12) | (day & 0xFFF),
                // Consecutive anonymous events share a visit.
                None => (1 << 61) | (id / 6),
            };
            (customer, product, t, session)
        };

        let mut s = SplitMix64::new(key(self.seed, Stream::Session, session_key));
        let (a, b, c) = (s.next_u64(), s.next_u64(), s.next_u64());
        let session_id = format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFF,
            8 | (b >> 62),
            (b >> 48) & 0xFFF,
            b & 0xFFFF_FFFF_FFFF
        );
        let region = match customer {
            Some(cust) => self.customer_region[cust as usize - 1],
            None => Region::ALL[(c % 4) as usize],
        };
        let ip = ip_address(region, &mut s);
        let agent = match customer {
            Some(cust) if c % 5 != 0 => self.customer_agent[cust as usize - 1] as usize,
            _ => (c >> 8) as usize % USER_AGENTS.len(),
        };
        row.extend([
            Value::from(id),
            customer.into(),
            product.into(),
            kind.as_str().into(),
            rfc3339(ts).into(),
            session_id.into(),
            ip.into(),
            USER_AGENTS[agent].into(),
        ]);
    }

    // ---- support tickets ------------------------------------------------------

    fn ticket_row(&self, id: u64, row: &mut Vec<Value>) {
        let t = self.ticket(id, None);
        row.extend([
            Value::from(id),
            t.customer_id.into(),
            rfc3339(t.created_at).into(),
            t.subject.into(),
            t.body.into(),
            t.status.into(),
        ]);
    }

    /// A support ticket's body as in its row, with the byte spans of the PII
    /// its templates inserted (see `PII_FIELDS` in `seed/texts.rs`: the
    /// field name and where its value sits in the body). The subject templates
    /// only mention the order and the product, so the body is where PII is.
    pub fn ticket_body_with_pii(&self, id: u64) -> (String, Vec<(&'static str, Range<usize>)>) {
        let mut pii = Vec::new();
        let t = self.ticket(id, Some(&mut pii));
        (t.body, pii)
    }

    /// A review's body as in its row, with the PII spans its optional
    /// contact tail inserted (as [`DemoDataset::ticket_body_with_pii`]).
    pub fn review_body_with_pii(&self, id: u64) -> (String, Vec<(&'static str, Range<usize>)>) {
        let mut pii = Vec::new();
        let r = self.review(id, Some(&mut pii));
        (r.body, pii)
    }

    /// A customer's full name and first name, as tickets and reviews write
    /// them: the "known names" a scrubber is given for that customer.
    pub fn customer_names(&self, customer: u64) -> (String, String) {
        let c = self.customer(customer);
        (c.full_name, c.first.to_owned())
    }

    fn ticket(&self, id: u64, mut pii: Option<&mut Vec<PiiSpan>>) -> Ticket {
        let mut rng = Rng::for_entity(self.seed, Stream::Ticket, id);
        let n = self.count(DemoTable::SupportTickets);
        let t = slot_time(ACTIVITY_START, ACTIVITY_SPAN, id, n, i64::MAX, &mut rng);
        let template = rng.pick_weighted_by(TICKET_TEMPLATES, |tpl| tpl.weight);
        let mut facts = Facts::default();

        let (customer_id, created_at, card_index) = match template.kind {
            TicketKind::Order => {
                // About an order from the last couple of weeks before `t`.
                let n_orders = self.count(DemoTable::Orders);
                let back = rng.below(n_orders / 50 + 1);
                let order = self.order(self.order_index_at(t).saturating_sub(back).max(1));
                let customer = self.customer(order.customer);
                let (address, zip) = self.shipping(&order, &customer);
                facts.order = order.id.to_string();
                facts.amount = money(order.total_cents(), customer.country);
                facts.product = self.product(order.items()[0].product).name;
                facts.date = spoken_date(order.created_at, customer.country, &mut rng);
                facts.address = address;
                facts.zip = zip.to_owned();
                let created = (order.created_at + rng.range(3600, 10 * DAY)).min(WINDOW_END);
                (order.customer, created, order.card_index)
            }
            TicketKind::Account => {
                let customer = self.active_customer_at(t, &mut rng);
                let product = self.popular_product(&mut rng);
                facts.product = self.product(product).name;
                (customer, t, 0)
            }
        };

        let c = self.customer(customer_id);
        if facts.address.is_empty() {
            facts.address = format!("{}, {}", c.street, c.city.name);
            facts.zip = c.zip.to_owned();
        }
        facts.first = c.first.to_owned();
        facts.name = c.full_name.clone();
        facts.email = self.email(customer_id).to_owned();
        facts.alt_email = alternate_email(self.seed, customer_id, &c);
        // People type a number even when their profile has none.
        let phone = c
            .phone
            .clone()
            .unwrap_or_else(|| Phone::random(c.country, c.city, &mut rng));
        facts.phone = phone.render_varied(&mut rng);
        let card = self.card_number(customer_id, card_index);
        facts.last4 = card[card.len() - 4..].to_owned();
        facts.card = match rng.below(10) {
            0..=3 => grouped(&card, ' '),
            4..=6 => grouped(&card, '-'),
            _ => card,
        };
        facts.city = c.city.name.to_owned();
        facts.dob = iso_date(c.birth);

        let subject = *rng.pick(template.subjects);
        let subject = facts.fill(subject);
        let mut body = String::with_capacity(400);
        let greeting = *rng.pick(GREETINGS);
        if !greeting.is_empty() {
            body.push_str(greeting);
            body.push_str("\n\n");
        }
        facts.fill_recording(template.body, &mut body, pii.as_deref_mut());
        body.push_str("\n\n");
        let closing = *rng.pick(CLOSINGS);
        facts.fill_recording(closing, &mut body, pii);

        let age = WINDOW_END - created_at;
        let status = *rng.pick_weighted(match age {
            a if a < 3 * DAY => &[("open", 70), ("pending", 30)][..],
            a if a < 14 * DAY => &[("open", 20), ("pending", 40), ("closed", 40)],
            _ => &[("open", 3), ("pending", 5), ("closed", 92)],
        });
        Ticket {
            customer_id,
            created_at,
            subject,
            body,
            status,
        }
    }

    // ---- reviews ----------------------------------------------------------------

    fn review_row(&self, id: u64, row: &mut Vec<Value>) {
        let r = self.review(id, None);
        row.extend([
            Value::from(id),
            r.customer_id.into(),
            r.product_id.into(),
            r.rating.into(),
            r.body.into(),
        ]);
    }

    fn review(&self, id: u64, pii: Option<&mut Vec<PiiSpan>>) -> Review {
        let mut rng = Rng::for_entity(self.seed, Stream::Review, id);
        let n_orders = self.count(DemoTable::Orders);
        // Reviews come from delivered (or returned) orders when possible.
        let mut order = self.order(1 + rng.below(n_orders));
        for _ in 0..6 {
            if matches!(order.status, "delivered" | "returned") {
                break;
            }
            order = self.order(1 + rng.below(n_orders));
        }
        let item = order.items()[rng.below(order.len as u64) as usize];
        let weights: &[(i64, u32)] = if order.status == "returned" {
            &[(1, 35), (2, 30), (3, 20), (4, 10), (5, 5)]
        } else {
            &[(1, 8), (2, 6), (3, 12), (4, 26), (5, 48)]
        };
        let rating = *rng.pick_weighted(weights);
        let template = *rng.pick(match rating {
            4 | 5 => REVIEW_POSITIVE,
            3 => REVIEW_NEUTRAL,
            _ => REVIEW_NEGATIVE,
        });
        let mut facts = Facts {
            product: self.product(item.product).name,
            ..Facts::default()
        };
        let mut body = facts.fill(template);
        if rng.chance(70) {
            let c = self.customer(order.customer);
            facts.email = self.email(order.customer).to_owned();
            facts.name = c.full_name.clone();
            facts.city = c.city.name.to_owned();
            let phone = c
                .phone
                .unwrap_or_else(|| Phone::random(c.country, c.city, &mut rng));
            facts.phone = phone.render_varied(&mut rng);
            let tail = *rng.pick(REVIEW_PII_TAILS);
            facts.fill_recording(tail, &mut body, pii);
        }
        Review {
            customer_id: order.customer,
            product_id: item.product,
            rating,
            body,
        }
    }
}

/// The Luhn check digit for a payload of decimal digits.
pub(crate) fn luhn_check_digit(payload: &[u8]) -> u8 {
    // Walking from the right, every other digit starting with the payload's
    // last one is doubled (the check digit itself will take position 1).
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// `4111 1111 1111 1111`.
fn grouped(card: &str, sep: char) -> String {
    let mut out = String::with_capacity(card.len() + 3);
    for (i, ch) in card.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

const GLOBAL_EMAIL_DOMAINS: &[(&str, u32)] = &[
    ("gmail.com", 55),
    ("outlook.com", 8),
    ("yahoo.com", 7),
    ("hotmail.com", 6),
    ("icloud.com", 6),
    ("proton.me", 3),
];

/// An e-mail local part and domain derived from the name.
fn email_parts(
    first: &str,
    last: &str,
    birth_year: i64,
    country: &'static Country,
    rng: &mut Rng,
) -> (String, &'static str) {
    let f = ascii_slug(first);
    let l = ascii_slug(last);
    let initial = f.chars().next().unwrap_or('x');
    let yy = birth_year.rem_euclid(100);
    let local = match rng.below(100) {
        0..=29 => format!("{f}.{l}"),
        30..=43 => format!("{f}{l}"),
        44..=49 => format!("{f}_{l}"),
        50..=59 => format!("{initial}{l}"),
        60..=65 => format!("{initial}.{l}"),
        66..=75 => format!("{f}.{l}{yy:02}"),
        76..=80 => format!("{l}.{f}"),
        81..=88 => format!("{f}{}", rng.range(1, 999)),
        _ => format!("{f}.{}{}", &l[..l.len().min(1)], birth_year),
    };
    let domain = if !country.email_domains.is_empty() && rng.chance(200) {
        *rng.pick(country.email_domains)
    } else {
        *rng.pick_weighted(GLOBAL_EMAIL_DOMAINS)
    };
    (local, domain)
}

/// The address a customer asks to switch to in a ticket.
fn alternate_email(seed: u64, id: u64, c: &Customer) -> String {
    let mut rng = Rng::for_entity(seed, Stream::AltEmail, id);
    let others = [
        "outlook.com",
        "proton.me",
        "icloud.com",
        "gmail.com",
        "fastmail.com",
    ];
    let mut domain = *rng.pick(&others);
    if domain == c.email_domain {
        domain = "fastmail.com";
    }
    format!(
        "{}.{}{}@{domain}",
        ascii_slug(c.first),
        ascii_slug(&c.last),
        rng.range(1, 99)
    )
}

/// An amount as the customer would write it in their currency notation.
fn money(cents: i64, country: &Country) -> String {
    let (units, rest) = (cents / 100, cents % 100);
    match (country.code, country.region) {
        ("GB", _) => format!("£{units}.{rest:02}"),
        ("IE", _) => format!("€{units}.{rest:02}"),
        (_, Region::Eu) => format!("{units},{rest:02} €"),
        _ => format!("${units}.{rest:02}"),
    }
}

/// A date as written in a message: ISO, "5 March", or the local numeric style.
fn spoken_date(t: i64, country: &Country, rng: &mut Rng) -> String {
    let (y, m, d) = date_of(t);
    let month = MONTH_NAMES[m as usize - 1];
    match rng.below(3) {
        0 => iso_date((y, m, d)),
        1 if country.code == "US" => format!("{month} {d}"),
        1 => format!("{d} {month}"),
        _ => match country.code {
            "US" => format!("{m:02}/{d:02}/{y}"),
            "DE" | "PL" | "NL" | "SE" => format!("{d:02}.{m:02}.{y}"),
            "JP" | "KR" => format!("{y}/{m:02}/{d:02}"),
            _ => format!("{d:02}/{m:02}/{y}"),
        },
    }
}

/// A public-looking address for a visitor from `region`: IPv4 from blocks
/// allocated in that part of the world, sometimes IPv6.
fn ip_address(region: Region, s: &mut SplitMix64) -> String {
    let r = s.next_u64();
    if r % 100 < 8 {
        let prefixes: &[&str] = match region {
            Region::Na => &["2600", "2601", "2602", "2605", "2607"],
            Region::Eu => &["2a00", "2a01", "2a02", "2a03", "2001"],
            Region::Apac => &["2400", "2401", "2404", "2405", "240d"],
            Region::Latam => &["2800", "2801", "2803", "2804"],
        };
        let mut out = prefixes[(r >> 8) as usize % prefixes.len()].to_owned();
        let mut bits = s.next_u64();
        let more = s.next_u64();
        for i in 0..7 {
            if i == 4 {
                bits = more;
            }
            out.push(':');
            out.push_str(&format!("{:x}", bits & 0xFFFF));
            bits >>= 16;
        }
        out
    } else {
        let firsts: &[u8] = match region {
            Region::Na => &[
                24, 47, 50, 63, 64, 66, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 104,
                107, 108, 173, 174, 184,
            ],
            Region::Eu => &[
                2, 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
                92, 93, 94, 95, 109, 176, 178, 185, 188, 212, 213, 217,
            ],
            Region::Apac => &[
                1, 14, 27, 36, 39, 42, 49, 58, 59, 60, 61, 101, 103, 110, 111, 112, 113, 114, 115,
                116, 118, 119, 120, 121, 122, 123, 124, 125, 126, 175, 180, 182, 183, 202, 203,
                210, 211, 218, 219, 220, 221, 222,
            ],
            Region::Latam => &[177, 179, 181, 186, 187, 189, 190, 191, 200, 201],
        };
        let o = s.next_u64();
        format!(
            "{}.{}.{}.{}",
            firsts[(r >> 8) as usize % firsts.len()],
            o & 0xFF,
            (o >> 8) & 0xFF,
            1 + (o >> 16) % 254
        )
    }
}

/// Browser and app user agents of the shop's visitors.
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "PrivetShop/3.4.1 (iPhone; iOS 17.5; Scale/3.00)",
    "PrivetShop/3.4.0 (Android 14; Pixel 7a)",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        // 7992739871x has check digit 3 (the textbook example).
        assert_eq!(luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        // 4111 1111 1111 1111 is a valid test card.
        assert_eq!(
            luhn_check_digit(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
            1
        );
    }

    #[test]
    fn scaled_counts() {
        assert_eq!(scaled(5_000, 1.0), 5_000);
        assert_eq!(scaled(500, 0.01), 5);
        assert_eq!(scaled(500, 0.001), 1); // 0.5 rounds up
        assert_eq!(scaled(500, 0.0001), 1); // never below one row
        assert_eq!(scaled(2_000, 0.05), 100);
    }

    #[test]
    fn ages_and_addresses_are_plausible() {
        let ds = DemoDataset::new(0.05, 3).unwrap();
        for id in 1..=ds.row_count(DemoTable::Customers) {
            let c = ds.customer(id);
            let (cy, cm, cd) = date_of(c.created_at);
            let (by, bm, bd) = c.birth;
            let age_at = |y: i64, m: u32, d: u32| y - by - i64::from((m, d) < (bm, bd));
            assert!(
                age_at(cy, cm, cd) >= 18,
                "customer {id} too young at sign-up"
            );
            assert!((18..=85).contains(&age_at(2025, 12, 31)), "customer {id}");
            assert!(c
                .country
                .cities
                .iter()
                .any(|city| city.zips.contains(&c.zip)));
            assert!(c.created_at >= SIGNUP_START && c.created_at <= WINDOW_END);
        }
        for id in 1..=ds.row_count(DemoTable::Orders) {
            let o = ds.order(id);
            assert!(
                ds.customer_created[o.customer as usize - 1] <= o.created_at,
                "order {id}"
            );
            assert!((1..=4).contains(&o.len));
        }
    }

    #[test]
    fn ipv4_and_ipv6_both_occur_and_parse() {
        let mut s = SplitMix64::new(9);
        let (mut v4, mut v6) = (0, 0);
        for i in 0..2000 {
            let ip = ip_address(Region::ALL[i % 4], &mut s);
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => v4 += 1,
                Ok(std::net::IpAddr::V6(_)) => v6 += 1,
                Err(e) => panic!("{ip}: {e}"),
            }
        }
        assert!(v4 > 1600 && v6 > 80, "{v4} {v6}");
    }
}
