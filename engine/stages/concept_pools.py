"""Word pools for the synthetic concept generator (`engine.stages.concepts`).

All text here is original to po-tui. The pools are data, not logic: the generator combines them
so that 1,000+ concepts stay distinct while every requirement still belongs to the concept's
domain (a Product Owner review can only judge alignment when the requirements are on-topic).

Placeholders: `{entity}`, `{actor}`, `{system}` are filled from the concept's own domain;
`{a_kind}` / `{A_kind}` / `{a_label}` carry their article ("an enterprise platform").
Entities and actors are plural noun phrases so every template reads as English.
"""

from __future__ import annotations

TIERS = ("simple", "medium", "corporate")
PRIORITIES = ("High", "Medium", "Low")

# Families close enough that a requirement from one would not read as out of scope in the other:
# conflicts are drawn from a family that is neither the concept's own nor one of these neighbours.
NEAR_FAMILIES = {
    "finance": {"commerce", "legal"},
    "health": {"science"},
    "science": {"health", "manufacturing"},
    "logistics": {"commerce", "mobility", "manufacturing"},
    "mobility": {"logistics"},
    "commerce": {"logistics", "finance", "marketing"},
    "marketing": {"commerce", "service"},
    "service": {"marketing"},
    "it_ops": {"security"},
    "security": {"it_ops"},
    "people": {"education"},
    "education": {"people"},
    "energy": {"sustainability"},
    "sustainability": {"energy"},
    "manufacturing": {"logistics", "science"},
}

DOMAINS: tuple[dict, ...] = (
    {
        "key": "lending",
        "family": "finance",
        "label": "loan processing",
        "stems": ("Loan Orchestration", "Credit Decisioning", "Lending Pipeline"),
        "audiences": ("community banks", "credit unions", "fintech lenders"),
        "entities": ("loan applications", "credit files", "repayment schedules"),
        "actors": ("loan officers", "underwriters", "credit analysts"),
        "systems": ("the core banking system", "credit bureau feeds", "the e-signature service"),
        "features": (
            "Collect borrower documents through a guided checklist with missing-item reminders",
            "Calculate debt-service coverage ratios from uploaded financial statements",
            "Route each loan application to an underwriter based on amount and risk band",
            "Generate a term sheet draft from the approved credit decision",
            "Track covenant deadlines for active loans and alert the relationship manager",
            "Pull credit bureau reports with the applicant's recorded consent",
            "Show a pipeline view of loan applications by stage and expected close date",
            "Record the rationale for every manual override of an automated credit score",
        ),
        "pains": (
            "loan officers chase documents over email and approvals take weeks",
            "credit decisions live in spreadsheets that nobody can audit",
        ),
        "constraints": (
            "Keep credit decision records for the retention period set by the lending regulator",
        ),
    },
    {
        "key": "payments_compliance",
        "family": "finance",
        "label": "payments compliance",
        "stems": ("Payments Compliance", "Transaction Screening", "Payout Reconciliation"),
        "audiences": ("payment service providers", "online marketplaces", "remittance startups"),
        "entities": ("payment transactions", "sanctions alerts", "settlement batches"),
        "actors": ("compliance officers", "risk analysts", "finance operations staff"),
        "systems": ("the payment gateway", "the sanctions list provider", "the general ledger"),
        "features": (
            "Screen outgoing payments against sanctions lists before release",
            "Match settlement batches to bank statements and highlight breaks",
            "Open a case for each suspicious transaction with a documented disposition",
            "Apply configurable velocity limits per merchant and per card",
            "Prepare a monthly suspicious-activity summary for the compliance committee",
            "Hold payouts automatically when a merchant's chargeback ratio exceeds a threshold",
            "Keep a four-eyes approval step for releasing blocked payments",
            "Show false-positive rates per screening rule to tune alert quality",
        ),
        "pains": (
            "analysts clear thousands of false-positive alerts by hand every week",
            "reconciliation breaks are discovered days after settlement",
        ),
        "constraints": (
            "Screening rules must be versioned so any past decision can be replayed",
        ),
    },
    {
        "key": "expense",
        "family": "finance",
        "label": "expense management",
        "stems": ("Expense Control", "Spend Approval", "Corporate Card"),
        "audiences": ("mid-sized agencies", "consulting firms", "SMB finance teams"),
        "entities": ("expense reports", "card transactions", "reimbursement claims"),
        "actors": ("employees", "approvers", "accountants"),
        "systems": ("the accounting package", "the card issuer feed", "the payroll system"),
        "features": (
            "Capture receipts from a phone photo and extract merchant, date and amount",
            "Match card transactions to receipts and flag those still missing one",
            "Route expense reports to the right approver based on cost centre and amount",
            "Enforce per-diem and category limits from the travel policy",
            "Post approved expenses to the accounting package with the correct GL codes",
            "Reimburse approved claims in the next payroll run",
            "Show department spend against budget for the current month",
            "Convert foreign-currency expenses at the rate of the transaction date",
        ),
        "pains": (
            "month-end close waits on paper receipts",
            "policy violations are only caught after employees have been reimbursed",
        ),
        "constraints": (
            "Receipts must be stored in a form accepted by the tax authority for audits",
        ),
    },
    {
        "key": "telehealth",
        "family": "health",
        "label": "virtual care",
        "stems": ("Telehealth Triage", "Virtual Care", "Remote Consultation"),
        "audiences": ("rural clinics", "regional hospital networks", "home-care providers"),
        "entities": ("patient consultations", "symptom questionnaires", "care plans"),
        "actors": ("nurses", "physicians", "care coordinators"),
        "systems": (
            "the electronic health record",
            "the video visit provider",
            "the e-prescribing service",
        ),
        "features": (
            "Guide patients through a symptom questionnaire that suggests an urgency level",
            "Let nurses escalate a virtual visit to an in-person appointment in one step",
            "Run video consultations in the browser without installing software",
            "Write visit notes back to the electronic health record after each consultation",
            "Send patients a visit summary and follow-up instructions in plain language",
            "Show clinicians a queue of waiting patients ordered by urgency",
            "Support an interpreter joining a video visit as a third participant",
            "Record patient consent for telehealth before the first consultation",
        ),
        "pains": (
            "patients travel hours for consultations that could happen by video",
            "triage happens over the phone with no structured record",
        ),
        "constraints": (
            "Treat every consultation record as protected health information",
        ),
    },
    {
        "key": "clinic_intake",
        "family": "health",
        "label": "patient intake",
        "stems": ("Patient Intake", "Clinic Scheduling", "Referral Tracking"),
        "audiences": ("outpatient clinics", "dental practices", "physiotherapy chains"),
        "entities": ("appointments", "referrals", "intake forms"),
        "actors": ("front-desk staff", "practice managers", "clinicians"),
        "systems": (
            "the practice management system",
            "the insurance eligibility service",
            "the SMS gateway",
        ),
        "features": (
            "Let patients book, move and cancel appointments online",
            "Collect intake forms and insurance details before the visit",
            "Check insurance eligibility automatically the day before an appointment",
            "Send appointment reminders by SMS with a confirm-or-cancel link",
            "Track incoming referrals until the patient is seen",
            "Keep a waitlist that offers freed slots to the next patient",
            "Show daily no-show rates per clinician and appointment type",
            "Let clinicians see intake answers before the patient arrives",
        ),
        "pains": (
            "front desks re-type paper forms into the practice system",
            "no-shows leave expensive clinic slots empty",
        ),
        "constraints": (
            "Treat intake answers as protected health information",
        ),
    },
    {
        "key": "lab",
        "family": "science",
        "label": "laboratory sample management",
        "stems": ("Lab Automation", "Sample Tracking", "Assay Scheduling"),
        "audiences": ("contract research labs", "university core facilities", "biotech startups"),
        "entities": ("samples", "assay runs", "instrument bookings"),
        "actors": ("lab technicians", "study directors", "lab managers"),
        "systems": (
            "the laboratory information system",
            "the instrument control software",
            "the freezer monitoring service",
        ),
        "features": (
            "Register samples with barcodes and record their storage location",
            "Keep chain of custody for every sample from receipt to disposal",
            "Schedule assay runs around instrument availability and maintenance windows",
            "Import plate-reader results and attach them to the right samples",
            "Alert lab managers when a freezer leaves its temperature range",
            "Track reagent lots and their expiry dates per assay run",
            "Let study directors approve results before they are released",
            "Show instrument utilisation per week to plan purchases",
        ),
        "pains": (
            "samples are tracked on paper labels and spreadsheets",
            "instrument time is double-booked and runs are lost",
        ),
        "constraints": (
            "Electronic records must meet good laboratory practice requirements for signatures",
        ),
    },
    {
        "key": "inventory",
        "family": "logistics",
        "label": "inventory management",
        "stems": ("Inventory Command", "Stock Visibility", "Warehouse Replenishment"),
        "audiences": ("regional distributors", "multi-store retailers", "spare-parts wholesalers"),
        "entities": ("stock levels", "purchase orders", "stock transfers"),
        "actors": ("warehouse supervisors", "buyers", "store managers"),
        "systems": ("the ERP system", "the point-of-sale system", "the barcode scanners"),
        "features": (
            "Calculate reorder points per SKU from lead times and sales velocity",
            "Raise purchase orders automatically when stock falls below the reorder point",
            "Record cycle counts from handheld scanners and post adjustments",
            "Suggest stock transfers between stores to avoid local stock-outs",
            "Show stock on hand, on order and reserved for each warehouse",
            "Track lot numbers and expiry dates for perishable SKUs",
            "Flag slow-moving stock older than a configurable number of days",
            "Reserve stock for confirmed customer orders",
        ),
        "pains": (
            "stores run out of best-sellers while the warehouse is full",
            "stock counts disagree with the ERP every month",
        ),
        "constraints": (
            "The ERP system stays the system of record for stock valuation",
        ),
    },
    {
        "key": "last_mile",
        "family": "logistics",
        "label": "last-mile delivery",
        "stems": ("Last-Mile Fulfillment", "Delivery Dispatch", "Route Planning"),
        "audiences": ("courier companies", "grocery delivery services", "furniture retailers"),
        "entities": ("deliveries", "delivery routes", "proof-of-delivery records"),
        "actors": ("dispatchers", "drivers", "customer service agents"),
        "systems": ("the order management system", "the mapping service", "the driver app"),
        "features": (
            "Plan daily delivery routes that respect time windows and vehicle capacity",
            "Give customers a live tracking link with an estimated arrival time",
            "Capture proof of delivery with photo and signature in the driver app",
            "Let dispatchers reassign deliveries when a driver falls behind",
            "Offer customers a choice of delivery slot at checkout",
            "Record failed delivery attempts with a reason and rebook them",
            "Show on-time delivery rate per driver and per zone",
            "Batch deliveries by zone to reduce distance driven",
        ),
        "pains": (
            "customers call to ask where their parcel is",
            "routes are planned by hand every morning",
        ),
        "constraints": (
            "Driver location may only be tracked during working shifts",
        ),
    },
    {
        "key": "cold_chain",
        "family": "logistics",
        "label": "cold-chain logistics",
        "stems": ("Cold-Chain Monitoring", "Temperature Compliance", "Reefer Tracking"),
        "audiences": ("vaccine distributors", "seafood exporters", "food-service wholesalers"),
        "entities": ("temperature readings", "shipments", "excursion reports"),
        "actors": ("quality managers", "logistics coordinators", "carriers"),
        "systems": (
            "the IoT sensor gateway",
            "the transport management system",
            "the carrier portals",
        ),
        "features": (
            "Collect temperature readings from shipment sensors every five minutes",
            "Raise an excursion alert when a shipment leaves its allowed temperature range",
            "Produce a temperature certificate for each delivered shipment",
            "Let quality managers release or reject shipments after an excursion",
            "Show all in-transit shipments on a map with their current temperature",
            "Keep sensor calibration records and flag overdue calibrations",
            "Compare excursion rates across carriers and routes",
            "Store raw sensor data for the full product shelf life",
        ),
        "pains": (
            "temperature excursions are found only when the shipment arrives",
            "certificates are assembled by hand from data-logger downloads",
        ),
        "constraints": (
            "Sensor data must be stored unaltered for regulatory inspections",
        ),
    },
    {
        "key": "fleet",
        "family": "mobility",
        "label": "fleet management",
        "stems": ("Fleet Telemetry", "Vehicle Maintenance", "Driver Safety"),
        "audiences": ("bus operators", "utility field fleets", "rental car agencies"),
        "entities": ("vehicles", "maintenance jobs", "driving events"),
        "actors": ("fleet managers", "mechanics", "drivers"),
        "systems": ("the telematics units", "the fuel card provider", "the workshop system"),
        "features": (
            "Schedule preventive maintenance from mileage and engine hours",
            "Detect harsh braking and speeding events from telematics data",
            "Give each driver a weekly safety score with coaching tips",
            "Track fuel consumption per vehicle and flag unusual refuelling",
            "Record vehicle inspection checklists before each shift",
            "Show vehicle locations and status on a live map",
            "Open a workshop job automatically when a fault code is reported",
            "Plan vehicle replacement from total cost of ownership",
        ),
        "pains": (
            "breakdowns happen because services are missed",
            "fuel costs rise and nobody can explain why",
        ),
        "constraints": (
            "Must work with the telematics units already installed in the vehicles",
        ),
    },
    {
        "key": "onboarding",
        "family": "people",
        "label": "employee onboarding",
        "stems": ("Talent Onboarding", "Hiring Pipeline", "New Hire Journey"),
        "audiences": ("fast-growing startups", "hospital HR departments", "retail chains"),
        "entities": ("job candidates", "onboarding checklists", "job offers"),
        "actors": ("recruiters", "hiring managers", "new hires"),
        "systems": (
            "the HR information system",
            "the applicant tracking system",
            "the identity directory",
        ),
        "features": (
            "Build a personalised onboarding checklist from role, location and start date",
            "Collect signed contracts and tax forms before the first day",
            "Request laptops and accounts for new hires automatically",
            "Assign a buddy to each new hire and schedule check-in meetings",
            "Move job candidates through interview stages with structured feedback",
            "Generate job offers from approved salary bands",
            "Show hiring managers which onboarding tasks are overdue",
            "Survey new hires after 30 and 90 days about their onboarding",
        ),
        "pains": (
            "new hires arrive without a laptop or accounts",
            "onboarding steps differ by manager and are easy to forget",
        ),
        "constraints": (
            "Candidate data must be deleted after the legally allowed retention period",
        ),
    },
    {
        "key": "workforce",
        "family": "people",
        "label": "workforce scheduling",
        "stems": ("Shift Planning", "Hybrid Workforce", "Workforce Scheduling"),
        "audiences": ("contact centres", "care homes", "hotel groups"),
        "entities": ("shifts", "time-off requests", "desk bookings"),
        "actors": ("team leads", "shift workers", "HR partners"),
        "systems": ("the payroll system", "the time clock", "the calendar service"),
        "features": (
            "Build weekly shift plans from forecast demand and staff availability",
            "Let staff swap shifts with manager approval",
            "Check shift plans against rest-time and overtime rules",
            "Let employees book desks for office days",
            "Approve time-off requests with a view of team coverage",
            "Export worked hours to the payroll system",
            "Show planned versus actual hours per team",
            "Notify staff of published or changed shifts on their phone",
        ),
        "pains": (
            "rotas are built in spreadsheets and shared as screenshots",
            "overtime costs climb because gaps are filled at the last minute",
        ),
        "constraints": (
            "Scheduling rules must follow the working-time regulations of each site",
        ),
    },
    {
        "key": "learning",
        "family": "education",
        "label": "learning analytics",
        "stems": ("Learning Analytics", "Course Enrollment", "Skills Academy"),
        "audiences": ("community colleges", "corporate training teams", "online course creators"),
        "entities": ("course enrollments", "assessments", "learning paths"),
        "actors": ("instructors", "learners", "programme coordinators"),
        "systems": (
            "the learning management system",
            "the video hosting service",
            "the student information system",
        ),
        "features": (
            "Identify learners at risk of dropping out from activity and grades",
            "Let instructors build learning paths from existing modules",
            "Issue completion certificates that can be verified online",
            "Show engagement per module to find content that needs rework",
            "Let learners enrol in courses and join waitlists when full",
            "Grade multiple-choice assessments automatically with item statistics",
            "Recommend the next course based on a learner's goals",
            "Send programme coordinators a weekly completion report",
        ),
        "pains": (
            "instructors learn a student is struggling only at the final exam",
            "completion data is scattered across several course tools",
        ),
        "constraints": (
            "Learner records must follow the institution's student privacy rules",
        ),
    },
    {
        "key": "brand_sentiment",
        "family": "marketing",
        "label": "brand monitoring",
        "stems": ("Brand Sentiment", "Social Listening", "Review Insights"),
        "audiences": ("consumer brands", "restaurant groups", "PR agencies"),
        "entities": ("social mentions", "product reviews", "sentiment trends"),
        "actors": ("brand managers", "community managers", "PR leads"),
        "systems": ("the social media APIs", "the review site feeds", "the CRM"),
        "features": (
            "Collect mentions of the brand from social networks and review sites",
            "Classify each mention as positive, neutral or negative",
            "Alert brand managers when negative mentions spike above the usual level",
            "Group mentions into topics such as price, quality and service",
            "Compare sentiment with up to five competitor brands",
            "Let community managers reply to reviews from one inbox",
            "Send a weekly sentiment digest to the marketing leadership",
            "Track sentiment before and after each campaign launch",
        ),
        "pains": (
            "a bad review goes viral before anyone on the team notices",
            "sentiment is reported from a manual sample once a quarter",
        ),
        "constraints": (
            "Only collect public posts allowed by each platform's terms of service",
        ),
    },
    {
        "key": "growth",
        "family": "marketing",
        "label": "growth marketing",
        "stems": ("Growth Experiment", "Campaign Planning", "Referral Program"),
        "audiences": ("subscription apps", "direct-to-consumer brands", "B2B SaaS companies"),
        "entities": ("experiments", "campaigns", "referral rewards"),
        "actors": ("growth marketers", "product analysts", "campaign managers"),
        "systems": ("the product analytics tool", "the email service", "the ad platforms"),
        "features": (
            "Define A/B experiments with a hypothesis, a metric and a stopping rule",
            "Report experiment results with confidence intervals",
            "Give each customer a referral link and credit rewards on conversion",
            "Plan campaigns on a shared calendar with budget per channel",
            "Attribute sign-ups to campaigns with a configurable attribution window",
            "Build audience segments from product usage events",
            "Stop experiments automatically when a guardrail metric degrades",
            "Keep a searchable archive of past experiments and learnings",
        ),
        "pains": (
            "experiments are called early and results cannot be trusted",
            "nobody knows which campaign brought which customers",
        ),
        "constraints": (
            "Marketing messages may only go to contacts who opted in",
        ),
    },
    {
        "key": "support",
        "family": "service",
        "label": "customer support",
        "stems": ("Support Ticket", "Customer Signals", "Help Center"),
        "audiences": ("software vendors", "telecom resellers", "e-bike makers"),
        "entities": ("support tickets", "help articles", "customer conversations"),
        "actors": ("support agents", "team leads", "customers"),
        "systems": ("the CRM", "the email inbox", "the live chat widget"),
        "features": (
            "Turn emails and chat messages into tickets with the customer's history attached",
            "Suggest help articles to customers before they open a ticket",
            "Route tickets to agents by skill, language and workload",
            "Track response and resolution times against service levels",
            "Let agents merge duplicate tickets from the same customer",
            "Survey customers after a ticket is resolved",
            "Show the most frequent contact reasons each week",
            "Let team leads review and approve canned replies",
        ),
        "pains": (
            "customers repeat their problem to every agent",
            "the same questions arrive hundreds of times a week",
        ),
        "constraints": (
            "Conversation transcripts must be deletable on a customer's request",
        ),
    },
    {
        "key": "incident",
        "family": "it_ops",
        "label": "incident response",
        "stems": ("Incident Automation", "On-Call Response", "Service Status"),
        "audiences": (
            "SaaS engineering teams",
            "managed service providers",
            "e-commerce platforms",
        ),
        "entities": ("incidents", "alerts", "postmortems"),
        "actors": ("on-call engineers", "incident commanders", "SRE leads"),
        "systems": ("the monitoring stack", "the chat tool", "the paging service"),
        "features": (
            "Deduplicate alerts from monitoring tools into a single incident",
            "Page the on-call engineer and escalate when the page is not acknowledged",
            "Open a dedicated chat channel for each incident with responders invited",
            "Publish incident updates to a public status page",
            "Keep an incident timeline from chat messages and alert events",
            "Create a postmortem template pre-filled with the incident timeline",
            "Track action items from postmortems until they are closed",
            "Report mean time to acknowledge and resolve per service",
        ),
        "pains": (
            "engineers are woken up by dozens of duplicate alerts",
            "postmortem actions are agreed and then forgotten",
        ),
        "constraints": (
            "Must keep working when the primary cloud region is down",
        ),
    },
    {
        "key": "security",
        "family": "security",
        "label": "security operations",
        "stems": ("Access Review", "Vulnerability Triage", "Secrets Rotation"),
        "audiences": ("mid-market IT departments", "regional insurers", "software agencies"),
        "entities": ("access grants", "vulnerability findings", "service credentials"),
        "actors": ("security analysts", "system owners", "IT administrators"),
        "systems": ("the identity provider", "the vulnerability scanner", "the secrets vault"),
        "features": (
            "Run quarterly access reviews where system owners confirm or revoke grants",
            "Import vulnerability findings and deduplicate them across scanners",
            "Prioritise vulnerabilities by severity and asset exposure",
            "Rotate service credentials on a schedule without downtime",
            "Revoke all access within one hour of an employee leaving",
            "Assign remediation tasks to system owners with due dates by severity",
            "Show the count of overdue critical vulnerabilities per team",
            "Keep evidence of completed reviews for auditors",
        ),
        "pains": (
            "former employees keep access for weeks",
            "scanner reports pile up with no owner",
        ),
        "constraints": (
            "The tool must not store plaintext credentials outside the secrets vault",
        ),
    },
    {
        "key": "carbon",
        "family": "sustainability",
        "label": "sustainability reporting",
        "stems": ("Carbon Accounting", "Sustainability Reporting", "Emissions Tracking"),
        "audiences": ("manufacturing groups", "property funds", "food producers"),
        "entities": ("emission sources", "activity data", "supplier questionnaires"),
        "actors": ("sustainability managers", "site controllers", "suppliers"),
        "systems": ("the ERP system", "the utility bill feeds", "the travel booking tool"),
        "features": (
            "Calculate scope 1 and 2 emissions from energy and fuel activity data",
            "Estimate scope 3 emissions from purchasing data with spend-based factors",
            "Send questionnaires to suppliers and track their responses",
            "Keep the emission factor library versioned by year and source",
            "Show emissions per site against reduction targets",
            "Prepare disclosure tables in the format required by the reporting framework",
            "Let site controllers upload monthly meter readings",
            "Flag activity data that deviates strongly from the previous year",
        ),
        "pains": (
            "the annual report takes months of spreadsheet work",
            "suppliers answer data requests in incompatible formats",
        ),
        "constraints": (
            "Every reported figure must be traceable to its source data for assurance",
        ),
    },
    {
        "key": "energy",
        "family": "energy",
        "label": "energy asset management",
        "stems": ("Solar Asset", "Grid Demand", "Energy Metering"),
        "audiences": ("clean-energy cooperatives", "commercial landlords", "municipal utilities"),
        "entities": ("meter readings", "solar installations", "demand forecasts"),
        "actors": ("asset managers", "field technicians", "energy traders"),
        "systems": ("the SCADA system", "the smart meter head-end", "the weather data service"),
        "features": (
            "Compare actual solar output with expected output from weather data",
            "Forecast next-day demand per feeder from historic load and weather",
            "Open a field work order when an inverter reports a fault",
            "Bill cooperative members for their share of generated energy",
            "Show live generation and consumption per site",
            "Detect meters that stop reporting and schedule a visit",
            "Plan battery charge and discharge around tariff periods",
            "Report monthly performance ratio per installation",
        ),
        "pains": (
            "underperforming panels go unnoticed for months",
            "demand peaks cause expensive balancing charges",
        ),
        "constraints": (
            "Control commands to field equipment must go through the existing SCADA system",
        ),
    },
    {
        "key": "city_services",
        "family": "public",
        "label": "municipal services",
        "stems": ("Permit Processing", "Citizen Request", "Street Maintenance"),
        "audiences": ("city councils", "municipal smart-city teams", "county governments"),
        "entities": ("service requests", "permit applications", "inspection visits"),
        "actors": ("residents", "case workers", "inspectors"),
        "systems": ("the GIS platform", "the municipal document archive", "the payment service"),
        "features": (
            "Let residents report potholes and broken lights with a photo and map pin",
            "Accept permit applications online with fee payment",
            "Route service requests to the responsible department by location and category",
            "Schedule inspection visits and record results on a tablet",
            "Notify residents when the status of their request changes",
            "Publish a public map of open and resolved requests",
            "Track permit processing time against the statutory deadline",
            "Archive decided permits in the municipal document archive",
        ),
        "pains": (
            "residents phone the council to ask about their permit",
            "requests are forwarded between departments by email",
        ),
        "constraints": (
            "Public-facing pages must meet the government accessibility standard",
        ),
    },
    {
        "key": "nonprofit",
        "family": "community",
        "label": "nonprofit fundraising",
        "stems": ("Donor Relations", "Volunteer Coordination", "Grant Tracking"),
        "audiences": ("charities", "community foundations", "animal shelters"),
        "entities": ("donations", "volunteer shifts", "grant applications"),
        "actors": ("fundraisers", "volunteer coordinators", "programme managers"),
        "systems": ("the donation platform", "the email newsletter tool", "the accounting package"),
        "features": (
            "Record one-off and recurring donations with gift-aid or tax receipts",
            "Let volunteers sign up for shifts and receive reminders",
            "Track grant applications with deadlines and reporting obligations",
            "Segment donors by giving history for targeted appeals",
            "Send thank-you messages automatically after each donation",
            "Show fundraising progress against campaign goals",
            "Log volunteer hours for grant reports",
            "Prepare annual donation statements for donors",
        ),
        "pains": (
            "donor data lives in three spreadsheets that disagree",
            "grant reporting deadlines are missed",
        ),
        "constraints": (
            "Must stay within the free or charity-discounted tiers of hosted services",
        ),
    },
    {
        "key": "marketplace",
        "family": "commerce",
        "label": "cross-border e-commerce",
        "stems": ("Cross-Border Marketplace", "Seller Onboarding", "Order Management"),
        "audiences": ("artisan sellers", "independent fashion labels", "specialty food makers"),
        "entities": ("product listings", "customer orders", "seller accounts"),
        "actors": ("sellers", "marketplace operators", "buyers"),
        "systems": (
            "the payment provider",
            "the shipping label service",
            "the tax calculation service",
        ),
        "features": (
            "Let sellers create listings with translated titles and descriptions",
            "Calculate duties and taxes at checkout for the buyer's country",
            "Verify seller identity and bank details during onboarding",
            "Split each payment between the seller and the marketplace commission",
            "Print shipping labels with customs declarations",
            "Let buyers and sellers message each other about an order",
            "Handle returns with a prepaid label and automatic refund",
            "Rank product listings by relevance and seller rating",
        ),
        "pains": (
            "buyers abandon carts when duties appear at delivery",
            "seller onboarding takes weeks of email back and forth",
        ),
        "constraints": (
            "Payments must be handled by a licensed payment provider, not stored by the marketplace",
        ),
    },
    {
        "key": "agriculture",
        "family": "agriculture",
        "label": "farm management",
        "stems": ("Crop Planning", "Farm Yield", "Irrigation Scheduling"),
        "audiences": ("family farms", "agricultural cooperatives", "vineyards"),
        "entities": ("fields", "crop plans", "irrigation schedules"),
        "actors": ("farmers", "agronomists", "farm workers"),
        "systems": (
            "the soil moisture sensors",
            "the weather data service",
            "the farm machinery terminals",
        ),
        "features": (
            "Plan crop rotations per field over several seasons",
            "Schedule irrigation from soil moisture readings and rain forecasts",
            "Record fertiliser and pesticide applications per field",
            "Estimate yield per field from past harvests and current conditions",
            "Give farm workers a daily task list on their phone",
            "Show fields on a map with crop, growth stage and alerts",
            "Track harvest quantities per field and buyer",
            "Warn farmers about frost or heat risk for sensitive crops",
        ),
        "pains": (
            "irrigation runs on a fixed timer regardless of rain",
            "spray records are kept in a notebook",
        ),
        "constraints": (
            "Must work with intermittent mobile coverage in the fields",
        ),
    },
    {
        "key": "hospitality",
        "family": "hospitality",
        "label": "hospitality operations",
        "stems": ("Table Reservation", "Guest Experience", "Hotel Housekeeping"),
        "audiences": ("boutique hotels", "restaurant groups", "holiday-rental managers"),
        "entities": ("reservations", "room turnovers", "guest requests"),
        "actors": ("hosts", "housekeepers", "guests"),
        "systems": (
            "the property management system",
            "the channel manager",
            "the point-of-sale system",
        ),
        "features": (
            "Let guests reserve a table online and choose seating preferences",
            "Assign rooms to housekeepers by checkout times and floor",
            "Let guests send requests from their phone during their stay",
            "Mark rooms ready in real time so reception can check guests in early",
            "Keep guest preferences such as allergies and pillow type",
            "Manage a waitlist for fully booked evenings",
            "Collect guest feedback after checkout",
            "Synchronise room availability with booking channels",
        ),
        "pains": (
            "guests wait in the lobby because nobody knows which rooms are clean",
            "table bookings arrive by phone, email and three apps",
        ),
        "constraints": (
            "The property management system stays the source of truth for bookings",
        ),
    },
    {
        "key": "property",
        "family": "property",
        "label": "property management",
        "stems": ("Tenant Portal", "Property Maintenance", "Lease Management"),
        "audiences": ("residential landlords", "student housing operators", "housing associations"),
        "entities": ("maintenance requests", "leases", "rent payments"),
        "actors": ("tenants", "property managers", "contractors"),
        "systems": ("the accounting package", "the bank feed", "the e-signature service"),
        "features": (
            "Let tenants report repairs with photos and track progress",
            "Dispatch maintenance requests to approved contractors",
            "Collect rent by direct debit and chase late payments",
            "Sign leases electronically and store them per unit",
            "Remind property managers of lease renewals and rent reviews",
            "Schedule periodic safety inspections per building",
            "Share documents such as house rules with all tenants of a building",
            "Report rent arrears per property each month",
        ),
        "pains": (
            "repair requests get lost in personal inboxes",
            "rent arrears are noticed months late",
        ),
        "constraints": (
            "Tenant deposits must be handled through the approved deposit scheme",
        ),
    },
    {
        "key": "legal",
        "family": "legal",
        "label": "legal operations",
        "stems": ("Contract Review", "Matter Management", "Clause Library"),
        "audiences": ("in-house legal teams", "small law firms", "procurement departments"),
        "entities": ("contracts", "legal matters", "approved clauses"),
        "actors": ("lawyers", "paralegals", "business requesters"),
        "systems": (
            "the document management system",
            "the e-signature service",
            "the billing system",
        ),
        "features": (
            "Compare incoming contracts with the standard template and highlight deviations",
            "Let business requesters submit contract requests through an intake form",
            "Keep a library of approved clauses with fallback positions",
            "Track contract renewal and notice dates with reminders",
            "Record time spent per legal matter for billing",
            "Route contracts for approval by value and risk",
            "Search signed contracts by party, clause and date",
            "Report open legal matters by type and age",
        ),
        "pains": (
            "contracts auto-renew because notice dates were missed",
            "lawyers rewrite the same clauses every week",
        ),
        "constraints": (
            "Privileged documents must never leave the firm's document management system",
        ),
    },
    {
        "key": "quality",
        "family": "manufacturing",
        "label": "factory quality management",
        "stems": ("Production Line", "Quality Inspection", "Predictive Maintenance"),
        "audiences": ("automotive suppliers", "packaging plants", "electronics assemblers"),
        "entities": ("inspection results", "production batches", "machine alarms"),
        "actors": ("quality engineers", "line operators", "maintenance planners"),
        "systems": ("the MES", "the PLC data historian", "the ERP system"),
        "features": (
            "Record inspection results per production batch on a shop-floor tablet",
            "Stop a batch automatically when a measurement leaves its control limits",
            "Open a corrective action when a defect type repeats",
            "Predict machine failures from vibration and temperature trends",
            "Show overall equipment effectiveness per line and shift",
            "Trace every finished batch back to its raw-material lots",
            "Plan maintenance windows around the production schedule",
            "Produce certificates of conformance for customer shipments",
        ),
        "pains": (
            "defects are found by the customer instead of the line",
            "unplanned machine stops cost whole shifts",
        ),
        "constraints": (
            "No write access to PLCs; the tool may only read from the data historian",
        ),
    },
)

PRODUCT_SUFFIXES = (
    "Platform", "Hub", "Console", "Workspace", "Studio", "Portal",
    "Cockpit", "Assistant", "Tracker", "Board", "Suite", "Manager",
)

PRODUCT_KINDS = {
    "simple": ("web app", "lightweight tool", "mobile-first app", "hosted service"),
    "medium": ("web platform", "SaaS product", "shared workspace", "cloud service"),
    "corporate": (
        "enterprise platform",
        "company-wide platform",
        "managed platform",
        "enterprise suite",
    ),
}

GENERIC_AUDIENCES = (
    "small businesses", "SMB teams", "startups", "enterprises", "public sector agencies",
    "non-profits", "family-owned companies", "multi-site franchises", "university departments",
    "regional service firms", "scale-ups", "cooperatives",
)

# (metadata value, phrase used in text)
REGIONS = (
    ("Global", ("several countries", "markets worldwide", "multiple regions")),
    ("EU", ("the EU", "the European Union")),
    ("UK", ("the UK", "the United Kingdom")),
    ("Nordics", ("the Nordics", "the Nordic countries")),
    ("North America", ("North America", "the US and Canada")),
    ("US", ("the US", "the United States")),
    ("LATAM", ("Latin America", "LATAM")),
    ("APAC", ("Asia-Pacific", "APAC")),
    ("India", ("India",)),
    ("Japan", ("Japan",)),
    ("ANZ", ("Australia and New Zealand",)),
    ("Middle East", ("the Middle East", "the Gulf region")),
    ("Africa", ("Africa", "sub-Saharan Africa")),
)

REGION_CONSTRAINTS = {
    "Global": "Support per-customer data residency in at least two hosting regions",
    "EU": "Process and store personal data inside the EU in line with GDPR",
    "UK": "Comply with UK GDPR and keep personal data in UK or EU hosting",
    "Nordics": "Host data in the Nordic or EU region and follow GDPR",
    "North America": "Respect US state privacy laws and Canadian PIPEDA for personal data",
    "US": "Respect US state privacy laws such as the CCPA for personal data",
    "LATAM": "Meet Brazil's LGPD and other local data protection laws where customers operate",
    "APAC": "Host customer data in the customer's own country where local law requires it",
    "India": "Follow India's Digital Personal Data Protection Act for personal data",
    "Japan": "Follow Japan's APPI for personal data and offer a Japanese-language interface",
    "ANZ": "Follow the Australian and New Zealand Privacy Acts and host data in the region",
    "Middle East": "Keep personal data within the country where local residency rules apply",
    "Africa": "Follow local data protection laws such as POPIA and Kenya's Data Protection Act",
}

# focus key -> (phrases used in text, requirement templates)
FOCI = {
    "automation": (
        ("workflow automation", "automation of repetitive steps", "hands-off automation"),
        (
            "Automate routine handoffs of {entity} between {actor} with configurable rules",
            "Trigger follow-up tasks automatically when {entity} stall for more than two days",
        ),
    ),
    "predictive insights": (
        ("predictive insights", "forecasting and early warnings", "data-driven predictions"),
        (
            "Forecast volumes of {entity} for the next 90 days from historical data",
            "Flag unusual patterns in {entity} for review by {actor}",
        ),
    ),
    "compliance tracking": (
        ("compliance tracking", "audit readiness", "policy compliance"),
        (
            "Record an auditable approval trail for {entity} with who, what and when",
            "Check {entity} against configurable policy rules before they are submitted",
        ),
    ),
    "self-service": (
        ("self-service", "a self-service experience", "user self-service"),
        (
            "Let {actor} handle common requests about {entity} through a self-service portal",
            "Provide guided forms so {actor} can create {entity} without training",
        ),
    ),
    "real-time visibility": (
        ("real-time visibility", "live status tracking", "up-to-the-minute visibility"),
        (
            "Show the live status of {entity} on a shared board that refreshes within seconds",
            "Notify {actor} immediately when {entity} change state",
        ),
    ),
    "collaboration": (
        ("team collaboration", "cross-team collaboration", "shared workspaces for teams"),
        (
            "Let {actor} comment on, assign and discuss {entity} in shared threads",
            "Give {actor} a shared activity feed of changes to {entity}",
        ),
    ),
    "cost control": (
        ("cost control", "lower running costs", "spend visibility"),
        (
            "Track the cost associated with {entity} against budget thresholds",
            "Report monthly cost per team for handling {entity}",
        ),
    ),
    "personalized engagement": (
        ("personalized engagement", "tailored communication", "personal, timely outreach"),
        (
            "Personalise notifications about {entity} from each recipient's history and preferences",
            "Let {actor} choose the channel and frequency of updates about {entity}",
        ),
    ),
    "risk observability": (
        ("risk observability", "early risk detection", "visibility into risk"),
        (
            "Score {entity} for risk and surface the top items to {actor} every morning",
            "Keep a risk register linked to the affected {entity}",
        ),
    ),
    "mobile field work": (
        ("mobile field work", "field use on phones", "mobile-first use"),
        (
            "Let {actor} capture and update {entity} from a phone, including offline",
            "Sync changes to {entity} made offline as soon as a connection returns",
        ),
    ),
    "integration": (
        (
            "integration with existing systems",
            "connections to the tools already in use",
            "open integration",
        ),
        (
            "Synchronise {entity} with {system} in both directions",
            "Expose a documented REST API for reading and updating {entity}",
        ),
    ),
    "data quality": (
        ("data quality", "clean, trustworthy data", "reliable records"),
        (
            "Detect duplicate or incomplete {entity} and suggest corrections to {actor}",
            "Validate {entity} on entry with clear error messages",
        ),
    ),
}

GENERIC_FEATURES = (
    "Let {actor} search and filter {entity} by status, owner and date",
    "Provide a dashboard of {entity} with trends and outliers",
    "Synchronise {entity} with {system} on a schedule and on demand",
    "Export {entity} to CSV and PDF for offline review",
    "Keep a full change history for {entity}",
    "Import existing {entity} from spreadsheets with row-level validation feedback",
    "Offer role-based views so {actor} see only the {entity} relevant to them",
    "Bulk-update {entity} with a preview before changes are applied",
    "Send {actor} a daily digest of {entity} that need attention",
    "Attach files and notes to {entity}",
)

# (text, tiers it suits, usual priority); a tier also draws from the shared entries.
NFRS = (
    ("Key pages load in under 2 seconds on a typical broadband connection", TIERS, "High"),
    ("Core API calls respond in under 500 ms at the 95th percentile", TIERS, "High"),
    ("Meet WCAG 2.1 AA accessibility guidelines", TIERS, "Medium"),
    ("Encrypt data in transit with TLS 1.2 or later and at rest with AES-256", TIERS, "High"),
    ("Nightly backups with a restore procedure tested every quarter", TIERS, "Medium"),
    ("Work on current versions of Chrome, Firefox, Safari and Edge", TIERS, "Low"),
    ("Emit structured logs and basic health metrics for every service", TIERS, "Medium"),
    ("Usable on screens from 360 px phones to desktop monitors", TIERS, "Medium"),
    ("A new user can finish setup in under 10 minutes without training", ("simple",), "High"),
    ("99.5% monthly availability", ("simple",), "Medium"),
    ("Support up to 50 concurrent users on the smallest hosting plan", ("simple",), "Medium"),
    ("Hosting cost stays under a small team's monthly software budget", ("simple",), "Medium"),
    ("Upgrades install without manual database steps", ("simple", "medium"), "Low"),
    ("99.9% availability during business hours", ("medium",), "High"),
    ("Handle 500 concurrent users without slower response times", ("medium",), "High"),
    ("Zero-downtime deployments for routine releases", ("medium", "corporate"), "Medium"),
    (
        "Role-based access control with at least four permission levels",
        ("medium", "corporate"),
        "High",
    ),
    (
        "Single sign-on through SAML 2.0 or OpenID Connect with the corporate identity provider",
        ("corporate",),
        "High",
    ),
    (
        "99.95% monthly availability with a documented incident response process",
        ("corporate",),
        "High",
    ),
    ("Scale horizontally to 10,000 concurrent users", ("corporate",), "High"),
    ("Tamper-evident audit logs retained for seven years", ("corporate",), "High"),
    ("Controls evidenced for a SOC 2 Type II or ISO 27001 audit", ("corporate",), "High"),
    ("Disaster recovery with a recovery time objective of four hours", ("corporate",), "Medium"),
    (
        "Quarterly access reviews supported by exportable permission reports",
        ("corporate",),
        "Medium",
    ),
)

# (text, tiers it suits, usual priority). `{system}` is filled from the domain.
CONSTRAINTS = (
    ("Use only open-source or already-licensed third-party components", TIERS, "Medium"),
    ("No changes to {system}; integrate through its existing interfaces", TIERS, "High"),
    ("First release within three months", ("simple",), "High"),
    ("Built and run by a team of two developers", ("simple",), "High"),
    ("Must run on a single managed cloud instance", ("simple",), "Medium"),
    ("No dedicated operations staff; maintenance must be minimal", ("simple",), "Medium"),
    ("First release within six months", ("medium",), "High"),
    ("Reuse the existing cloud account and CI pipeline", ("medium",), "Medium"),
    ("Delivered by one product team of five to seven people", ("medium",), "Medium"),
    ("Store data in the existing PostgreSQL cluster", ("medium", "corporate"), "Medium"),
    ("Deploy on the existing Kubernetes clusters", ("medium", "corporate"), "High"),
    ("Pass the internal security review before go-live", ("corporate",), "High"),
    ("Follow the corporate change-management process for every release", ("corporate",), "Medium"),
    ("Integrate with the corporate identity provider; no local passwords", ("corporate",), "High"),
    ("Stay within the budget approved for this fiscal year", ("medium", "corporate"), "Medium"),
)

TIER_PHRASES = {
    "simple": (
        "simple operations",
        "a simple operational setup",
        "simple, low-overhead operations",
        "small teams with simple operations",
    ),
    "medium": (
        "medium operations",
        "medium-sized operations",
        "medium-complexity operations",
        "a medium operational footprint",
    ),
    "corporate": (
        "corporate operations",
        "corporate-scale operations",
        "a corporate rollout",
        "corporate operations across several business units",
    ),
}

# Templates for the concept paragraph; each is one sentence.
OPENERS = (
    "{Product} is {a_kind} for {label}, built for {audience} in {region}.",
    "We want to build {Product}, {a_kind} that handles {label} for {audience} across {region}.",
    "{Product} gives {audience} in {region} one place for {label}.",
    "For {audience} in {region}, {Product} brings {label} into a single {kind}.",
    "The idea is {Product}: {a_kind} for {label} aimed at {audience} operating in {region}.",
    "{Audience} in {region} need a better way to handle {label}, and {Product} is our answer.",
    "Build {Product}, {a_kind} that helps {audience} in {region} with {label}.",
    "{Product} is {a_label} product for {audience} in {region}.",
)

SCOPERS = (
    "It targets {tier_phrase} with an emphasis on {focus_phrase}.",
    "The first release is scoped for {tier_phrase}, and the main emphasis is {focus_phrase}.",
    "Designed for {tier_phrase}, it puts {focus_phrase} first.",
    "It should suit {tier_phrase}, with {focus_phrase} as the headline benefit.",
    "The product is meant for {tier_phrase}; what matters most is {focus_phrase}.",
    "Expect {tier_phrase}, and make {focus_phrase} the thing users notice first.",
)

TIER_REMARKS = {
    "simple": (
        "A small team should be able to run it without dedicated IT staff.",
        "Setup should take an afternoon, not a project.",
        "Keep it lean: a handful of users and no integration work on day one.",
        "The owners want something cheap to run and easy to learn.",
    ),
    "medium": (
        "Several departments will share it, so permissions and integrations matter more than polish.",
        "Usage is expected to grow steadily over the first year.",
        "It has to fit alongside a few existing tools rather than replace them.",
        "A couple of hundred people will use it every week.",
    ),
    "corporate": (
        "It must plug into the company's single sign-on and pass compliance reviews before rollout.",
        "About {headcount} employees will rely on it, so scale and audit trails matter.",
        "Procurement expects SSO, role-based access and evidence for regulatory audits.",
        "It will be rolled out to {headcount} users in stages, with compliance sign-off at each stage.",
        "Security, compliance and uptime commitments are part of the contract.",
    ),
}

HEADCOUNTS = ("2,000", "5,000", "8,000", "12,000", "25,000", "40,000")

PAIN_SENTENCES = (
    "Today {pain}.",
    "Right now {pain}.",
    "The main problem today is that {pain}.",
    "At the moment {pain}.",
)

DESCRIPTIONS = (
    "{Product} helps {audience} in {region} with {label}, focusing on {focus_phrase}.",
    "{A_kind} for {label} serving {audience} in {region}, built around {focus_phrase}.",
    "{Product}: {label} for {audience} in {region} with an emphasis on {focus_phrase}.",
)
