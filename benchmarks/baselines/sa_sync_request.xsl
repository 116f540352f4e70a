<?xml version="1.0" encoding="UTF-8"?>
<!--
  Baseline of the mapping benchmark: the SA_SYNC request mapping (mappings/sa-sync.request.yaml)
  written by hand as XSLT 1.0, run by libxslt. Code tables and time zones come from the same
  library the compiled transformer uses, through extension functions (XSLT 1.0 has neither).
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:ccb="urn:ccbmdm:ccb:v1"
    xmlns="urn:ccbmdm:mdm:v1"
    xmlns:f="urn:ccbmdm:benchmark:functions"
    exclude-result-prefixes="ccb f">
  <xsl:output method="xml" encoding="UTF-8"/>

  <xsl:template match="/ccb:ServiceAgreementSyncRequest">
    <UsageSubscriptionSyncRequest>
      <messageHeader>
        <xsl:for-each select="ccb:messageHeader/*">
          <xsl:element name="{local-name()}"><xsl:value-of select="."/></xsl:element>
        </xsl:for-each>
      </messageHeader>
      <xsl:variable name="send" select="ccb:sendDetails"/>
      <externalReferenceId><xsl:value-of select="$send/ccb:syncRequestId"/></externalReferenceId>
      <externalSystem><xsl:value-of select="$send/ccb:sourceSystem"/></externalSystem>
      <initialLoad><xsl:value-of select="$send/ccb:initialLoad"/></initialLoad>
      <targetMo><xsl:value-of select="f:lookup('OUCCB2_OUMDM2_MO', string($send/ccb:mo), '', 'targetMo')"/></targetMo>
      <xsl:for-each select="$send/ccb:pkValue1 | $send/ccb:pkValue2 | $send/ccb:pkValue3 | $send/ccb:pkValue4 | $send/ccb:pkValue5">
        <xsl:element name="externalPkValue{substring-after(local-name(), 'pkValue')}"><xsl:value-of select="."/></xsl:element>
      </xsl:for-each>
      <changeType><xsl:value-of select="ccb:changeType"/></changeType>
      <entityVersion><xsl:value-of select="ccb:entityVersion"/></entityVersion>
      <xsl:apply-templates select="ccb:serviceAgreement"/>
    </UsageSubscriptionSyncRequest>
  </xsl:template>

  <xsl:template match="ccb:serviceAgreement">
    <xsl:variable name="zone" select="string(ccb:timeZone)"/>
    <usageSubscription>
      <externalId><xsl:value-of select="ccb:saId"/></externalId>
      <externalAccountId><xsl:value-of select="ccb:accountId"/></externalAccountId>
      <usType><xsl:value-of select="f:lookup('OUCCB2_OUMDM2_USType', string(ccb:saType), string(ccb:cisDivision), 'usType')"/></usType>
      <division><xsl:value-of select="ccb:cisDivision"/></division>
      <startDateTime><xsl:value-of select="f:start-of-day(string(ccb:startDate), $zone)"/></startDateTime>
      <xsl:if test="ccb:endDate">
        <endDateTime><xsl:value-of select="f:start-of-day(string(ccb:endDate), $zone)"/></endDateTime>
      </xsl:if>
      <status>
        <xsl:choose>
          <xsl:when test="ccb:saStatus = 'ACTIVE' or ccb:saStatus = 'PENDSTOP' or ccb:saStatus = 'REACTIVATED'">ACTIVE</xsl:when>
          <xsl:when test="ccb:saStatus = 'STOPPED' or ccb:saStatus = 'CLOSED'">INACTIVE</xsl:when>
          <xsl:otherwise><xsl:value-of select="f:fail('no case of the map rule matches', string(ccb:saStatus))"/></xsl:otherwise>
        </xsl:choose>
      </status>
      <mainContactExternalId><xsl:value-of select="ccb:personId"/></mainContactExternalId>
      <xsl:for-each select="ccb:rateHistory">
        <usageGroups>
          <usageGroupExternalId><xsl:value-of select="ccb:rateSchedule"/></usageGroupExternalId>
          <startDateTime><xsl:value-of select="f:start-of-day(string(ccb:effectiveDate), $zone)"/></startDateTime>
        </usageGroups>
      </xsl:for-each>
      <xsl:for-each select="ccb:spLinks">
        <servicePoints>
          <spExternalId><xsl:value-of select="ccb:spId"/></spExternalId>
          <startDateTime><xsl:value-of select="f:in-zone(string(ccb:startDateTime), $zone)"/></startDateTime>
          <xsl:if test="ccb:stopDateTime">
            <endDateTime><xsl:value-of select="f:in-zone(string(ccb:stopDateTime), $zone)"/></endDateTime>
          </xsl:if>
        </servicePoints>
      </xsl:for-each>
      <summaryBilled><xsl:value-of select="ccb:summaryBilled"/></summaryBilled>
    </usageSubscription>
  </xsl:template>
</xsl:stylesheet>
