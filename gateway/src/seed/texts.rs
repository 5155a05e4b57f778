//! Free-text templates for support tickets and reviews.
//!
//! These texts are where PII detectors earn their keep, so they embed the
//! customer's real (synthetic) e-mail, phone number in assorted notations,
//! card numbers, names, addresses and order numbers, the way people actually
//! write to a shop.

/// The [`Facts`] fields that are PII in the sense of the anonymizer's text
/// scrubber (`anonymizer::scrub`): `email`/`alt_email` (e-mail), `phone`,
/// `card` (full, Luhn-valid number) and `name`/`first` (the customer's known
/// names). The other fields are deliberately left out: `address`, `zip` and
/// `city` are quasi-identifiers the scrubber does not look for, `order`,
/// `amount`, `date`, `dob`, `last4` and `product` are not direct identifiers
/// (and are what a phone or card detector must *not* swallow). No template
/// inserts an IBAN or an IP address.
pub(crate) const PII_FIELDS: &[&str] = &["name", "first", "email", "alt_email", "phone", "card"];

/// A [`PII_FIELDS`] entry and the byte span its value took in a rendered text.
pub(crate) type PiiSpan = (&'static str, std::ops::Range<usize>);

/// The values a template can mention, keyed by placeholder name.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) name: String,
    pub(crate) first: String,
    pub(crate) email: String,
    pub(crate) alt_email: String,
    pub(crate) phone: String,
    pub(crate) order: String,
    pub(crate) card: String,
    pub(crate) last4: String,
    pub(crate) amount: String,
    pub(crate) product: String,
    pub(crate) address: String,
    pub(crate) zip: String,
    pub(crate) city: String,
    pub(crate) date: String,
    pub(crate) dob: String,
}

impl Facts {
    fn get(&self, key: &str) -> Option<&str> {
        Some(match key {
            "name" => &self.name,
            "first" => &self.first,
            "email" => &self.email,
            "alt_email" => &self.alt_email,
            "phone" => &self.phone,
            "order" => &self.order,
            "card" => &self.card,
            "last4" => &self.last4,
            "amount" => &self.amount,
            "product" => &self.product,
            "address" => &self.address,
            "zip" => &self.zip,
            "city" => &self.city,
            "date" => &self.date,
            "dob" => &self.dob,
            _ => return None,
        })
    }

    /// Replaces every `{key}` in `template` and appends the result to `out`.
    /// Unknown keys are kept verbatim (a test guards against them).
    pub(crate) fn fill_into(&self, template: &str, out: &mut String) {
        self.fill_recording(template, out, None);
    }

    /// [`Facts::fill_into`], and when `pii` is given, records the field and
    /// byte span in `out` of every [`PII_FIELDS`] value inserted: the ground
    /// truth PII detectors are measured against. Recording never changes the
    /// text.
    pub(crate) fn fill_recording(
        &self,
        template: &str,
        out: &mut String,
        mut pii: Option<&mut Vec<PiiSpan>>,
    ) {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => match self.get(&after[..close]) {
                    Some(value) => {
                        let key = &after[..close];
                        if let (Some(spans), Some(field)) =
                            (pii.as_deref_mut(), PII_FIELDS.iter().find(|f| **f == key))
                        {
                            if !value.is_empty() {
                                spans.push((field, out.len()..out.len() + value.len()));
                            }
                        }
                        out.push_str(value);
                        rest = &after[close + 1..];
                    }
                    None => {
                        out.push('{');
                        rest = after;
                    }
                },
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
    }

    pub(crate) fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 64);
        self.fill_into(template, &mut out);
        out
    }
}

/// What a ticket template needs from the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketKind {
    /// About one order: `{order}`, `{product}`, `{amount}`, `{date}`, ...
    Order,
    /// About the account; no order facts are available.
    Account,
}

pub(crate) struct TicketTemplate {
    pub(crate) kind: TicketKind,
    /// Relative frequency.
    pub(crate) weight: u32,
    pub(crate) subjects: &'static [&'static str],
    pub(crate) body: &'static str,
}

pub(crate) static TICKET_TEMPLATES: &[TicketTemplate] = &[
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 14,
        subjects: &["Where is my order #{order}?", "Order {order} not delivered", "Package hasn't arrived"],
        body: "I ordered on {date} (order #{order}) and it still hasn't arrived. The tracking page \
               hasn't updated in a week. It should go to {address}, {zip}. Please call me at {phone} \
               if the courier needs anything.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 8,
        subjects: &["Item arrived damaged", "Broken {product}"],
        body: "The {product} from order {order} arrived with a cracked casing and the box was \
               crushed. I've attached two photos. Can you send a replacement to {address}? My number \
               is {phone}.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 6,
        subjects: &["Wrong item received", "Received the wrong product"],
        body: "I received something completely different from what I ordered in order no. {order}. \
               I ordered the {product}. Please contact me at {email} to sort this out.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 5,
        subjects: &["Charged twice", "Duplicate charge on my card"],
        body: "I was charged twice for order #{order} ({amount} each time). The card I used was \
               {card}. Please refund the duplicate charge as soon as possible.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 8,
        subjects: &["Refund status for order {order}", "Still waiting for my refund"],
        body: "I returned the {product} three weeks ago and still haven't seen the refund of {amount} \
               on my card ending in {last4}. Order number {order}, account email {email}.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 6,
        subjects: &["Cancel order {order}", "Please cancel my order"],
        body: "Please cancel order {order}, I placed it by mistake on {date}. If it has already been \
               charged to my card {card}, please refund it. You can reach me on {phone}.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 6,
        subjects: &["Change delivery address", "Wrong shipping address on order {order}"],
        body: "I made a mistake in the shipping address for order #{order}. The correct address is \
               {address}, {zip}. My phone is {phone} in case the driver needs it.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 4,
        subjects: &["Unauthorized charge", "I did not place this order"],
        body: "There is a charge of {amount} on my card {card} for order {order} that I do not \
               recognize. Please investigate and block any further charges. My email is {email} and \
               my phone number is {phone}.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 5,
        subjects: &["Invoice request for order {order}", "Need a VAT invoice"],
        body: "Could you send an invoice for order {order} to {email}? Billing name: {name}, \
               billing address: {address}, {zip}.",
    },
    TicketTemplate {
        kind: TicketKind::Order,
        weight: 7,
        subjects: &["Return request", "How do I return the {product}?"],
        body: "I'd like to return the {product} from order #{order}, it doesn't fit what I need. \
               Please email the return label to {email}.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 7,
        subjects: &["Can't log in", "Password reset email never arrives"],
        body: "I can't log into my account. My login is {email} and the password reset email never \
               arrives (checked spam too). Please call me at {phone}.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 4,
        subjects: &["Update my email address", "Change account email"],
        body: "Please change the email address on my account from {email} to {alt_email}. The phone \
               number on file is {phone}.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 3,
        subjects: &["Data deletion request", "Please delete my account"],
        body: "Under GDPR/CCPA I request the deletion of all personal data you hold about me. \
               Name: {name}. Email: {email}. Date of birth: {dob}. Please confirm in writing.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 2,
        subjects: &["Request for a copy of my data", "Subject access request"],
        body: "I would like a copy of all the personal data associated with my account ({email}, \
               phone {phone}), including my order history and marketing preferences.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 4,
        subjects: &["Stop marketing emails", "Unsubscribe"],
        body: "I keep getting promotional emails at {email} even though I unsubscribed twice. \
               Please remove me from all mailing lists.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 4,
        subjects: &["Card declined at checkout", "Payment keeps failing"],
        body: "My card {card} keeps getting declined at checkout even though my bank says \
               everything is fine. The billing postcode is {zip}. Can you help?",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 4,
        subjects: &["Please call me back", "Callback request"],
        body: "I tried calling your hotline three times and got cut off. Please call me back on \
               {phone}, ideally after 5pm.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 4,
        subjects: &["Question about the {product}", "Warranty question"],
        body: "Does the {product} come with an international warranty? I live in {city} and would \
               like to know before I buy.",
    },
    TicketTemplate {
        kind: TicketKind::Account,
        weight: 3,
        subjects: &["Discount code not working", "Promo code issue"],
        body: "The code WELCOME10 doesn't work for me at checkout. My account is {email}.",
    },
];

pub(crate) static GREETINGS: &[&str] = &[
    "Hi,",
    "Hello,",
    "Hi there,",
    "Dear Privet support,",
    "Good morning,",
    "Hello team,",
    "",
];

/// Sign-offs; many carry the customer's name, as real mail does.
pub(crate) static CLOSINGS: &[&str] = &[
    "Thanks,\n{name}",
    "Regards,\n{first}",
    "Best, {name}",
    "— {first}",
    "Kind regards,\n{name}\n{phone}",
    "Thank you!",
    "Sent from my iPhone",
    "Cheers, {first}",
    "{name}\n{address} {zip}",
];

pub(crate) static REVIEW_POSITIVE: &[&str] = &[
    "Absolutely love the {product}. Great quality for the price and it arrived two days early.",
    "Exactly as described. The {product} feels solid and well made. Would buy again.",
    "Bought the {product} as a gift and they loved it. Fast shipping too.",
    "Five stars. I've used the {product} every day for a month and it still looks new.",
    "Really happy with this. Much better than the one I had before.",
    "Great value, nice packaging, works perfectly.",
    "The {product} exceeded my expectations. Highly recommend!",
    "Second time ordering the {product}, consistent quality.",
];

pub(crate) static REVIEW_NEUTRAL: &[&str] = &[
    "The {product} is okay. Does the job, but the finish could be better.",
    "Decent for the price, nothing special. Delivery took longer than promised.",
    "It's fine. Smaller than I expected from the photos.",
    "Works as advertised, though the instructions were confusing.",
    "Average quality. Not sure I would buy the {product} again.",
];

pub(crate) static REVIEW_NEGATIVE: &[&str] = &[
    "The {product} stopped working after a week. Very disappointed.",
    "Poor quality, it broke the first time I used it. Returned it.",
    "Arrived damaged and customer service took ages to answer.",
    "Not as described at all. The {product} looks cheap in person.",
    "Do not buy. Mine arrived with parts missing and the refund is still pending.",
    "Terrible fit and the material feels flimsy.",
];

/// Occasional contact details people leave in public reviews.
pub(crate) static REVIEW_PII_TAILS: &[&str] = &[
    " If you have questions about it, email me at {email}.",
    " Happy to answer questions: {phone}.",
    " — {name}, {city}",
    " Seller, please contact me at {email} about the replacement.",
    " Text me on {phone} if you want to buy my old one.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_known_placeholders(template: &str) {
        let facts = Facts::default();
        let filled = facts.fill(template);
        assert!(!filled.contains('{'), "unknown placeholder in {template:?}");
    }

    #[test]
    fn templates_only_use_known_placeholders() {
        assert!(TICKET_TEMPLATES.len() >= 12);
        for t in TICKET_TEMPLATES {
            assert_known_placeholders(t.body);
            for s in t.subjects {
                assert_known_placeholders(s);
            }
            if t.kind == TicketKind::Account {
                for key in ["{order}", "{amount}", "{date}", "{last4}", "{address}"] {
                    assert!(!t.body.contains(key), "{key} in account template");
                }
            }
        }
        let lists = [
            GREETINGS,
            CLOSINGS,
            REVIEW_POSITIVE,
            REVIEW_NEUTRAL,
            REVIEW_NEGATIVE,
            REVIEW_PII_TAILS,
        ];
        for t in lists.iter().flat_map(|l| l.iter()) {
            assert_known_placeholders(t);
        }
    }

    #[test]
    fn fill_replaces_keys() {
        let facts = Facts {
            email: "a@b.c".into(),
            order: "42".into(),
            ..Facts::default()
        };
        assert_eq!(
            facts.fill("order #{order} for {email} {x}"),
            "order #42 for a@b.c {x}"
        );
    }
}
